package partition

import (
	"errors"
	"os"
	"path/filepath"

	wlog "github.com/weir-broker/weir/internal/log"
)

// TopicIDFile is the file in a partition directory naming the id of the
// topic the directory belongs to, in Kafka's format, so that a directory
// left by a deleted topic is never taken for a new topic of the same name.
const TopicIDFile = "partition.metadata"

// TopicID reads the topic id recorded in dir through fs; ok is false when
// none is recorded.
func TopicID(fs wlog.FS, dir string) (id string, ok bool, err error) {
	b, err := wlog.ReadWholeFile(fs, filepath.Join(dir, TopicIDFile), 1<<10)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(b), true, nil
}

// RecordTopicID durably records id in dir through fs, unless it is
// recorded already.
func RecordTopicID(fs wlog.FS, dir, id string) error {
	if got, ok, err := TopicID(fs, dir); err == nil && ok && got == id {
		return nil
	}
	return wlog.WriteFileDurably(fs, dir, TopicIDFile, []byte(id))
}
