package log_test

import (
	"log/slog"
	"os"
	"testing"
)

// TestMain silences the log's recovery messages, which the tests provoke
// on purpose; run with WEIR_TEST_LOGS=1 to see them.
func TestMain(m *testing.M) {
	if os.Getenv("WEIR_TEST_LOGS") == "" {
		slog.SetDefault(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}
