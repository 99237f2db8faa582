package console

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// assets are the templates and the stylesheet, built into the binary so
// the console needs nothing from another host.
//
//go:embed templates/*.html static/*
var assets embed.FS

// pageNames are the pages, one template file each beside the layout.
var pageNames = []string{"cluster", "topics", "topic", "groups", "group", "reset", "transactions", "abort", "partabort", "records", "error"}

var funcs = template.FuncMap{
	"ids": joinIDs,
	"offset": func(o int64) string {
		if o < 0 {
			return "-"
		}
		return strconv.FormatInt(o, 10)
	},
	"age":   func(ms int64) string { return (time.Duration(ms) * time.Millisecond).Truncate(time.Second).String() },
	"int64": func(v int32) int64 { return int64(v) },
	"when":  func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000") },
}

// joinIDs writes node ids or partitions as 1,2,3.
func joinIDs(ids []int32) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

func parsePages() (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// isDenied reports whether err is an ACL refusal.
func isDenied(err error) bool {
	var ae *kadm.AuthError
	return errors.As(err, &ae) || errors.Is(err, errDenied) ||
		errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.GroupAuthorizationFailed) ||
		errors.Is(err, kerr.TransactionalIDAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed)
}

// isAuthFailure reports whether err is the broker refusing the user's
// login (not an ACL refusal, which the page shows).
func isAuthFailure(err error) bool {
	return errors.Is(err, kerr.SaslAuthenticationFailed) || errors.Is(err, kerr.IllegalSaslState) || errors.Is(err, kerr.UnsupportedSaslMechanism)
}
