package batch

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Control record types: the key of the one record in a control batch.
const (
	ControlAbort  = 0
	ControlCommit = 1
)

// IsCommitMarker reads whether a control batch (a transaction marker)
// commits or aborts.
func IsCommitMarker(b []byte) (bool, error) {
	recs, err := Records(b)
	if err != nil {
		return false, err
	}
	if len(recs) != 1 {
		return false, fmt.Errorf("%w: control batch with %d records", ErrCorrupt, len(recs))
	}
	var key kmsg.ControlRecordKey
	if err := key.ReadFrom(recs[0].Key); err != nil {
		return false, fmt.Errorf("%w: control record key: %v", ErrCorrupt, err)
	}
	switch key.Type {
	case ControlCommit:
		return true, nil
	case ControlAbort:
		return false, nil
	}
	return false, fmt.Errorf("%w: control record type %d", ErrCorrupt, key.Type)
}
