package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // the photo formats DecodeConfig checks
	_ "image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/urbanbrain/urbanbrain/auth"
	"github.com/urbanbrain/urbanbrain/event"
	"github.com/urbanbrain/urbanbrain/incidents"
	"github.com/urbanbrain/urbanbrain/objstore"
)

// Evidence photos (docs/api.md, "Photos"): a worker's phone uploads each photo of a resolution
// to POST /api/v1/incidents/{id}/photos before the resolve command names it in evidence.photos;
// the desk shows it from GET /api/v1/incidents/{id}/photos/{name}. A photo is named by the
// hash of its bytes, so an upload retried from an offline queue stores nothing twice, and kept
// under its incident, so reading it takes the same scope as reading the incident.

// MaxPhotoBytes is the largest photo accepted: a phone camera's JPEG, not a video.
const MaxPhotoBytes = 8 << 20

// photoTypes are the accepted formats by their sniffed content type, with the extension of the
// stored name. WebP is accepted by its signature only (the standard library has no decoder).
var photoTypes = map[string]string{"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}

func (s *Server) photoRoutes() []Route {
	return []Route{
		{"POST /api/v1/incidents/{id}/photos", s.need(auth.PermCommand, s.uploadPhoto)},
		{"GET /api/v1/incidents/{id}/photos/{name}", s.need(auth.PermReadIncidents, s.getPhoto)},
	}
}

// uploadPhoto answers POST /api/v1/incidents/{id}/photos: the body is the image's bytes. 201
// {"name", "url"} when stored, 200 with the same when those bytes were there already.
func (s *Server) uploadPhoto(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	id := r.PathValue("id")
	d, ok := s.incidentInScope(w, r, claims, id)
	if !ok {
		return
	}
	// Who may attach evidence is who may act on the incident: a worker only on their own task.
	if err := incidents.MayTouch(event.Actor{Subject: claims.Subject, Role: claims.Role, District: claims.District, Grids: claims.Grids}, &d.Incident); err != nil {
		writeError(w, http.StatusForbidden, CodeForbidden, err.Error())
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPhotoBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, CodeInvalidRequest, fmt.Sprintf("a photo is at most %d MiB", MaxPhotoBytes>>20))
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, CodeInvalidRequest, "body: "+err.Error())
		return
	}
	ctype := http.DetectContentType(body)
	ext, ok := photoTypes[ctype]
	if !ok {
		writeError(w, http.StatusUnsupportedMediaType, CodeInvalidRequest, "a photo is a JPEG, PNG or WebP image; this body is "+ctype)
		return
	}
	if ctype != "image/webp" {
		if _, _, err := image.DecodeConfig(bytes.NewReader(body)); err != nil {
			writeError(w, http.StatusUnsupportedMediaType, CodeInvalidRequest, "the image cannot be read: "+err.Error())
			return
		}
	}
	sum := sha256.Sum256(body)
	name := hex.EncodeToString(sum[:]) + ext
	key := photoKey(id, name)
	answer := PhotoAnswer{Name: name, URL: "/api/v1/incidents/" + id + "/photos/" + name}
	if rc, _, err := s.objects.Get(r.Context(), key); err == nil {
		_ = rc.Close()
		writeJSON(w, http.StatusOK, answer)
		return
	}
	if err := s.objects.Put(r.Context(), key, bytes.NewReader(body), int64(len(body)), ctype); err != nil {
		s.log.Error("store a photo", zap.String("incident", id), zap.Error(err))
		writeError(w, http.StatusServiceUnavailable, CodeUnavailable, "the photo could not be stored; try again")
		return
	}
	at := time.Now().UTC()
	rec := event.AuditRecord{ID: "photo:" + id + ":" + name, Kind: event.AuditPhoto, IncidentID: id, Action: "upload",
		Actor: event.Actor{Subject: claims.Subject, Role: claims.Role, District: claims.District, Grids: claims.Grids},
		OK:    true, Target: name, Reason: strconv.Itoa(len(body)) + " bytes " + ctype, At: at}
	if err := s.emit(r.Context(), event.Outputs{{Key: event.IncidentStreet(id), ID: rec.ID, Time: at, Data: rec}}); err != nil {
		s.log.Error("audit a photo", zap.String("incident", id), zap.Error(err))
	}
	writeJSON(w, http.StatusCreated, answer)
}

// getPhoto answers GET /api/v1/incidents/{id}/photos/{name} with the image, to whoever may see
// the incident.
func (s *Server) getPhoto(w http.ResponseWriter, r *http.Request) {
	claims, _ := auth.FromContext(r.Context())
	id, name := r.PathValue("id"), r.PathValue("name")
	if !event.IsPhotoName(name) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no photo "+name)
		return
	}
	if _, ok := s.incidentInScope(w, r, claims, id); !ok {
		return
	}
	rc, info, err := s.objects.Get(r.Context(), photoKey(id, name))
	if errors.Is(err, objstore.ErrNotFound) {
		writeError(w, http.StatusNotFound, CodeNotFound, "no photo "+name)
		return
	}
	if err != nil {
		s.internalError(w, "read a photo", err)
		return
	}
	defer rc.Close()
	hdr := w.Header()
	hdr.Set("Content-Type", photoContentType(name))
	hdr.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	hdr.Set("Cache-Control", "private, max-age=86400, immutable") // the name is the hash of the bytes
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	_, _ = io.Copy(w, rc)
}

func photoKey(incident, name string) string { return "incidents/" + incident + "/photos/" + name }

func photoContentType(name string) string {
	for t, ext := range photoTypes {
		if strings.HasSuffix(name, ext) {
			return t
		}
	}
	return "application/octet-stream"
}
