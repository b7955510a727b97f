package httpapi

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

type publishBatchJSON struct {
	Results []webhooks.PublishResult `json:"results"`
}

// decodePublishInput decodes one {event, data, id?} object whose fields are
// named with prefix in errors.
func decodePublishInput(m map[string]json.RawMessage, prefix string, errs webhooks.ValidationErrors) webhooks.PublishInput {
	o := newJSONObject(m, prefix, errs)
	o.only("event", "data", "id")
	var in webhooks.PublishInput
	if ev := o.str("event", true, false); ev != nil {
		if !webhooks.IsEventType(*ev) {
			o.bad("event", "unknown event type; allowed: "+strings.Join(webhooks.EventTypeNames(), ", "))
		}
		in.Event = *ev
	}
	in.Data = o.object("data", true, false)
	if id := o.str("id", false, true); id != nil {
		if reason := checkIdempotencyKey(*id); reason != "" {
			o.bad("id", reason)
		}
		in.IdempotencyKey = *id
	}
	return in
}

// checkIdempotencyKey returns why key is not a valid idempotency key, or "".
func checkIdempotencyKey(key string) string {
	if key == "" || len(key) > webhooks.MaxIdempotencyKeyLen {
		return "must be 1 to 255 bytes"
	}
	if !utf8.ValidString(key) {
		return "must be valid UTF-8"
	}
	for _, c := range key {
		if !unicode.IsPrint(c) {
			return "must contain printable characters only"
		}
	}
	return ""
}

// decodePublish decodes the body of POST /events.
func decodePublish(body []byte) (webhooks.PublishInput, error) {
	m, err := parseObject(body)
	if err != nil {
		return webhooks.PublishInput{}, err
	}
	errs := webhooks.ValidationErrors{}
	in := decodePublishInput(m, "", errs)
	if err := errs.Err(); err != nil {
		return webhooks.PublishInput{}, err
	}
	return in, nil
}

// decodePublishBatch decodes the body of POST /events/batch: 1 to 500
// events, errors naming their index (events[3].event).
func decodePublishBatch(body []byte) ([]webhooks.PublishInput, error) {
	m, err := parseObject(body)
	if err != nil {
		return nil, err
	}
	errs := webhooks.ValidationErrors{}
	o := newJSONObject(m, "", errs)
	o.only("events")
	items, ok := o.array("events", true)
	if ok {
		switch {
		case len(items) == 0:
			o.bad("events", "must contain at least 1 event")
		case len(items) > webhooks.MaxBatchEvents:
			o.bad("events", "must contain at most "+strconv.Itoa(webhooks.MaxBatchEvents)+" events")
			items = nil
		}
	}
	ins := make([]webhooks.PublishInput, 0, len(items))
	for i, raw := range items {
		prefix := "events[" + strconv.Itoa(i) + "]"
		im, dup, ok := members(raw)
		if !ok && (jsonKind(raw) != kindObject || json.Unmarshal(raw, &im) != nil) {
			errs.Add(prefix, "must be a JSON object")
			continue
		}
		if dup != "" {
			errs.Add(prefix+"."+fieldName(dup), "is given more than once")
			continue
		}
		ins = append(ins, decodePublishInput(im, prefix+".", errs))
	}
	if err := errs.Err(); err != nil {
		return nil, err
	}
	return ins, nil
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	in, err := decodePublish(body)
	if err != nil {
		return err
	}
	res, err := s.cfg.Events.Publish(r.Context(), r.PathValue("shop_id"), []webhooks.PublishInput{in})
	if err != nil {
		return err
	}
	if len(res) != 1 {
		return errUnexpectedResults(len(res), 1)
	}
	s.metrics.countPublished(1)
	s.writeJSON(w, r, http.StatusAccepted, res[0])
	return nil
}

func (s *Server) handlePublishBatch(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	ins, err := decodePublishBatch(body)
	if err != nil {
		return err
	}
	res, err := s.cfg.Events.Publish(r.Context(), r.PathValue("shop_id"), ins)
	if err != nil {
		return err
	}
	if len(res) != len(ins) {
		return errUnexpectedResults(len(res), len(ins))
	}
	s.metrics.countPublished(len(res))
	s.writeJSON(w, r, http.StatusAccepted, publishBatchJSON{Results: res})
	return nil
}

type unexpectedResultsError struct{ got, want int }

func (e unexpectedResultsError) Error() string {
	return "publish returned " + strconv.Itoa(e.got) + " results for " + strconv.Itoa(e.want) + " events"
}

func errUnexpectedResults(got, want int) error { return unexpectedResultsError{got, want} }
