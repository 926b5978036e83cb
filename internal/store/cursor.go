package store

import (
	"encoding/base64"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Encode makes the opaque cursor GET /v1/tasks and GraphQL hand out:
// base64url of "v1|<created_at>|<id>", or "u1|<updated_at>|<id>" for a list
// ordered by update time.
func (c Cursor) Encode() string {
	if c.UpdatedAt != nil {
		return base64.RawURLEncoding.EncodeToString([]byte("u1|" + c.UpdatedAt.UTC().Format(time.RFC3339Nano) + "|" + c.ID.String()))
	}
	return base64.RawURLEncoding.EncodeToString([]byte("v1|" + c.CreatedAt.UTC().Format(time.RFC3339Nano) + "|" + c.ID.String()))
}

// ParseCursor reads a cursor made by Encode; false for anything else.
func ParseCursor(s string) (Cursor, bool) {
	if len(s) > 200 {
		return Cursor{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, false
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 || (parts[0] != "v1" && parts[0] != "u1") {
		return Cursor{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, parts[1])
	if err != nil {
		return Cursor{}, false
	}
	id, err := uuid.Parse(parts[2])
	if err != nil {
		return Cursor{}, false
	}
	if parts[0] == "u1" {
		return Cursor{UpdatedAt: &at, ID: id}, true
	}
	return Cursor{CreatedAt: at, ID: id}, true
}
