// Package brokererr words a broker's error answer for people: the Kafka
// error code's name once, then the broker's own message about this
// request instead of the code's generic description, so a command's error
// is one line that says each thing once.
package brokererr

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
)

// WithMessage returns err, a Kafka error code from a response, together
// with msg, the error message the broker sent with it (responses since
// KIP-152 and KIP-514 carry one). A bare code becomes
// "TOPIC_ALREADY_EXISTS: topic "orders" already exists": the broker's
// message replaces the code's generic description, and a message that
// starts with the code's name (Weir's do) does not repeat it. The result
// still matches the code with errors.Is. A message already in err's text
// adds nothing.
func WithMessage(err error, msg string) error {
	if err == nil {
		return nil
	}
	var code *kerr.Error
	if errors.As(err, &code) {
		msg = strings.TrimPrefix(msg, code.Message+": ")
	}
	msg = strings.TrimSpace(msg)
	if msg == "" || strings.Contains(err.Error(), msg) {
		return err
	}
	if code != nil && err == error(code) {
		return &codeWithMessage{code: code, msg: msg}
	}
	return fmt.Errorf("%w (%s)", err, msg)
}

// codeWithMessage is a Kafka error code with the broker's message in
// place of the code's description.
type codeWithMessage struct {
	code *kerr.Error
	msg  string
}

func (e *codeWithMessage) Error() string { return e.code.Message + ": " + e.msg }
func (e *codeWithMessage) Unwrap() error { return e.code }
