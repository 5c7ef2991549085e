package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/urbanbrain/urbanbrain/app"
	"github.com/urbanbrain/urbanbrain/auth"
)

// userCommand manages local accounts through a running server's accounts API, as an admin
// whose short-lived token is signed with the data directory's key: the first admin is made
// this way, and the API is the one place accounts change.
func userCommand(stdin io.Reader, stdout io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("urbanbrain user", flag.ContinueOnError)
	var (
		url          = fs.String("url", "http://127.0.0.1:8080", "the running urbanbrain's HTTP address")
		dataDir      = fs.String("data-dir", "./data", "data directory of that instance (its key signs the admin token)")
		role         = fs.String("role", "", "add: admin, operator, supervisor, worker, rule_author, viewer")
		district     = fs.String("district", "", "add: limit the account to one district code")
		grids        = fs.String("grids", "", "add: comma-separated grid codes (workers)")
		passwordFile = fs.String("password-file", "", "add, reset: read the password from this file (default: the first line of standard input)")
	)
	fs.String("config", "", "YAML configuration file")
	return &ffcli.Command{
		Name:       "user",
		ShortUsage: "urbanbrain user add|disable|enable|reset [flags] <username>",
		ShortHelp:  "create, disable, enable or reset a local account for the pages' sign-in",
		LongHelp: "Calls the accounts API of the server at --url as an admin, with a 5-minute token signed by the\n" +
			"key in --data-dir. The password (add, reset) comes from --password-file or standard input,\n" +
			"never from a flag. Example: echo 'a-long-password' | urbanbrain user add --role admin root",
		FlagSet: fs,
		Options: parseOptions(),
		Exec: func(ctx context.Context, args []string) error {
			// The action comes first (`user add --role admin root`): the flags after it are
			// parsed here, as the flag package stops at the first argument that is not one.
			if len(args) > 0 {
				if err := fs.Parse(args[1:]); err != nil {
					return err
				}
				args = append(args[:1], fs.Args()...)
			}
			if len(args) != 2 {
				return errors.New("give an action (add, disable, enable, reset) and a username")
			}
			action, name := args[0], args[1]
			key, err := auth.LoadOrCreateKey(*dataDir)
			if err != nil {
				return err
			}
			tok, err := auth.NewIssuer(key, app.TokenIssuer).Issue(auth.Claims{Subject: "cli:" + currentUser(), Role: auth.RoleAdmin}, 5*time.Minute)
			if err != nil {
				return err
			}
			password := func() (string, error) {
				var r io.Reader = stdin
				if *passwordFile != "" {
					f, err := os.Open(*passwordFile)
					if err != nil {
						return "", err
					}
					defer f.Close()
					r = f
				}
				line, err := bufio.NewReader(r).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return "", err
				}
				return strings.TrimRight(line, "\r\n"), nil
			}
			var method, path string
			var body any
			switch action {
			case "add":
				p, err := password()
				if err != nil {
					return err
				}
				method, path = http.MethodPost, "/api/v1/users"
				body = map[string]any{"username": name, "role": *role, "district": *district, "grids": splitComma(*grids), "password": p}
			case "reset":
				p, err := password()
				if err != nil {
					return err
				}
				method, path, body = http.MethodPost, "/api/v1/users/"+name+"/reset", map[string]string{"password": p}
			case "disable", "enable":
				method, path = http.MethodPost, "/api/v1/users/"+name+"/"+action
			default:
				return fmt.Errorf("unknown action %q: want add, disable, enable or reset", action)
			}
			return callAPI(ctx, stdout, method, strings.TrimRight(*url, "/")+path, tok, body)
		},
	}
}

// callAPI sends one request with a bearer token and prints the answer; an error answer is
// returned as an error with the server's message.
func callAPI(ctx context.Context, stdout io.Writer, method, url, token string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("is urbanbrain running at that address? %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var e struct {
			Code  string `json:"code"`
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s (%s)", resp.Status, e.Error, e.Code)
		}
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	_, err = stdout.Write(b)
	return err
}

// currentUser names who ran the command, for the audit log.
func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "unknown"
}
