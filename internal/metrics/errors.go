package metrics

// Errors by code in answers, as Kafka's ErrorsPerSec counts them
// (AbstractResponse.errorCounts): every error code an answer carries, at
// its top level and per topic, partition, group or resource, each
// occurrence once. NONE is not counted; the requests counter has the
// total.

import (
	"reflect"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Errors counts the error codes resp carries under the API of key
// (follower marks a replica's fetch). It walks Produce and Fetch answers
// directly, as they are the hot path and nearly always clean; others by
// their ErrorCode fields.
func (m *Metrics) Errors(key int16, follower bool, resp kmsg.Response) {
	if key < 0 || int(key) >= len(m.byKey) || resp == nil {
		return
	}
	api := kmsg.NameForKey(key)
	if follower {
		api = "FetchFollower"
	}
	count := func(code int16) {
		if code != 0 {
			m.errors.WithLabelValues(api, errorName(code)).Inc()
		}
	}
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				count(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.FetchResponse:
		count(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				count(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	default:
		walkErrorCodes(reflect.ValueOf(resp), count)
	}
}

// errorName is the code's Kafka name, or its number for a code kerr does
// not know.
func errorName(code int16) string {
	if e := kerr.TypedErrorForCode(code); e != nil && e.Code == code {
		return e.Message
	}
	return strconv.Itoa(int(code))
}

// errorCodeFields caches, per struct type, the indexes of its ErrorCode
// field (-1: none) and of the fields that may hold more (structs, slices,
// pointers).
var errorCodeFields sync.Map // reflect.Type -> *codeFields

type codeFields struct {
	code  int
	inner []int
}

func fieldsOf(t reflect.Type) *codeFields {
	if f, ok := errorCodeFields.Load(t); ok {
		return f.(*codeFields)
	}
	f := &codeFields{code: -1}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		switch {
		case sf.Name == "ErrorCode" && sf.Type.Kind() == reflect.Int16:
			f.code = i
		case sf.Type.Kind() == reflect.Struct, sf.Type.Kind() == reflect.Pointer && sf.Type.Elem().Kind() == reflect.Struct,
			sf.Type.Kind() == reflect.Slice && (sf.Type.Elem().Kind() == reflect.Struct || sf.Type.Elem().Kind() == reflect.Pointer):
			f.inner = append(f.inner, i)
		}
	}
	errorCodeFields.Store(t, f)
	return f
}

// walkErrorCodes calls count with every ErrorCode field under v.
func walkErrorCodes(v reflect.Value, count func(int16)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			walkErrorCodes(v.Elem(), count)
		}
	case reflect.Slice:
		for i := range v.Len() {
			walkErrorCodes(v.Index(i), count)
		}
	case reflect.Struct:
		f := fieldsOf(v.Type())
		if f.code >= 0 {
			count(int16(v.Field(f.code).Int()))
		}
		for _, i := range f.inner {
			walkErrorCodes(v.Field(i), count)
		}
	}
}
