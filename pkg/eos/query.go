package eos

import (
	"net/http"
	"strconv"
)

// QueryHandler serves interactive queries of the store:
// GET /stores/{store}/{key} answers the key's committed value from the
// partitions this worker owns and has restored (200), or 404 when none of
// them holds the key, as Kafka Streams' interactive queries answer only
// from local state. A key held by another worker is found by asking every
// worker, or the one whose partition the key maps to.
func (p *Processor) QueryHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stores/{store}/{key}", func(w http.ResponseWriter, r *http.Request) {
		if !p.stateful || r.PathValue("store") != p.cfg.Store {
			http.Error(w, "no such store", http.StatusNotFound)
			return
		}
		key := []byte(r.PathValue("key"))
		// A bbolt read is a lookup in its memory map; holding the read
		// lock only keeps the file open under it.
		p.mu.RLock()
		defer p.mu.RUnlock()
		for part, t := range p.tasks {
			if !t.serving {
				continue
			}
			v, err := t.get(key)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			if v != nil {
				w.Header().Set("Weir-Partition", strconv.Itoa(int(part)))
				w.Header().Set("Content-Type", "application/octet-stream")
				_, _ = w.Write(v)
				return
			}
		}
		http.Error(w, "key not found on this worker", http.StatusNotFound)
	})
	return mux
}
