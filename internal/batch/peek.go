package batch

import "errors"

// PeekHeader decodes the fixed header of the batch at the start of b when b
// holds at least the header but not necessarily the whole batch, as when a
// reader walks batch headers in a file without loading the records. It makes
// the same checks as ParseHeader except that the records need not be present.
func PeekHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	h, err := ParseHeader(b[:HeaderSize])
	if errors.Is(err, ErrTruncated) {
		// With HeaderSize bytes present, ParseHeader only reports a
		// truncation once it has decoded every header field.
		err = nil
	}
	return h, err
}
