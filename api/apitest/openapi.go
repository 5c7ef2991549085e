// Package apitest holds test helpers of the HTTP API: the OpenAPI document's validator, which
// the api package's tests and the composition root's recorded runs (app) share. It is for tests
// only; nothing serving requests imports it.
package apitest

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"
)

// OpenAPIValidator parses doc as an OpenAPI 3.1 document, fails t unless it builds and
// validates without an error, and returns the validator of requests and answers against it.
func OpenAPIValidator(t testing.TB, doc []byte) (libopenapi.Document, validator.Validator) {
	t.Helper()
	d, err := libopenapi.NewDocument(doc)
	if err != nil {
		t.Fatalf("parse the OpenAPI document: %v", err)
	}
	if v := d.GetSpecInfo().Version; v != "3.1.0" {
		t.Fatalf("the document is OpenAPI %q, want 3.1.0", v)
	}
	if _, err := d.BuildV3Model(); err != nil {
		t.Fatalf("build the OpenAPI model: %v", err)
	}
	v, errs := validator.NewValidator(d)
	for _, err := range errs {
		t.Errorf("validator: %v", err)
	}
	if v == nil {
		t.FailNow()
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		t.Fatalf("the document is not valid OpenAPI 3.1:\n%s", Explain(verrs))
	}
	return d, v
}

// Explain is the validator's errors, one a line, with where in the body each schema failed.
func Explain(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "%s: %s\n", e.Message, e.Reason)
		for _, se := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "  at %s (%s): %s\n", se.FieldPath, se.KeywordLocation, se.Reason)
		}
	}
	return b.String()
}

// Exchange is one recorded request and its answer; Body is the answer's body.
type Exchange struct {
	Request  *http.Request
	Response *http.Response
	Body     []byte
}

// Describe is how a failure names an exchange.
func (e Exchange) Describe() string {
	return fmt.Sprintf("%s %s → %d", e.Request.Method, e.Request.URL.RequestURI(), e.Response.StatusCode)
}
