package graphql

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// JSON is the JSON scalar: a task context, a step result or error, kept as
// the raw JSON it is stored as.
type JSON json.RawMessage

// MarshalGQL writes the raw JSON (null when empty).
func (j JSON) MarshalGQL(w io.Writer) {
	if len(j) == 0 {
		_, _ = io.WriteString(w, "null")
		return
	}
	_, _ = w.Write(j)
}

// UnmarshalGQL takes the value the transport decoded (numbers as
// json.Number, so none loses precision) back to JSON.
func (j *JSON) UnmarshalGQL(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("not a JSON value: %w", err)
	}
	*j = JSON(bytes.TrimSpace(buf.Bytes()))
	return nil
}
