package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/store"
)

func TestCursorRoundTrip(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 6, 8, 0, 0, 123456789, time.UTC)
	for _, c := range []store.Cursor{{CreatedAt: at, ID: uuid.New()}, {UpdatedAt: &at, ID: uuid.New()}} {
		got, ok := store.ParseCursor(c.Encode())
		if !ok || got.ID != c.ID || !got.CreatedAt.Equal(c.CreatedAt) || (c.UpdatedAt == nil) != (got.UpdatedAt == nil) ||
			(c.UpdatedAt != nil && !got.UpdatedAt.Equal(*c.UpdatedAt)) {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v", c.Encode(), got, ok, c)
		}
	}
	for _, bad := range []string{"", "x", "djF8eHx5", strings.Repeat("A", 300)} {
		if _, ok := store.ParseCursor(bad); ok {
			t.Errorf("cursor %q accepted", bad)
		}
	}
}
