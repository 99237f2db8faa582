package broker

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// errCode is the Kafka error code err carries (a kerr.Error anywhere in
// its chain), or UNKNOWN_SERVER_ERROR.
func errCode(err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	return kerr.UnknownServerError.Code
}

// errMessage is err's text for responses that carry an error message.
func errMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}

// wrap attaches a Kafka error code to a cause, keeping the cause's text
// for responses that carry a message.
func wrap(code *kerr.Error, cause error) error { return fmt.Errorf("%w: %v", code, cause) }
