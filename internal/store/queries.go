package store

import (
	"bufio"
	"fmt"
	"io/fs"
	"strings"

	tasksql "github.com/taskerhq/tasker/sql"
)

// loadQueries reads every "-- name: x" block of the embedded sql/queries files.
func loadQueries() (map[string]string, error) {
	files, err := fs.Glob(tasksql.Queries, "queries/*.sql")
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range files {
		data, err := fs.ReadFile(tasksql.Queries, f)
		if err != nil {
			return nil, err
		}
		var name string
		var body strings.Builder
		flush := func() error {
			if name == "" {
				return nil
			}
			if _, dup := out[name]; dup {
				return fmt.Errorf("%s: query %q defined twice", f, name)
			}
			out[name] = strings.TrimSpace(body.String())
			body.Reset()
			return nil
		}
		sc := bufio.NewScanner(strings.NewReader(string(data)))
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(strings.TrimSpace(line), "-- name:"); ok {
				if err := flush(); err != nil {
					return nil, err
				}
				name = strings.TrimSpace(n)
				continue
			}
			if name != "" {
				body.WriteString(line)
				body.WriteByte('\n')
			}
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// queries is the parsed set, looked up by name; a missing name is a bug
// caught by the store's tests, so q panics only inside this package.
type queries map[string]string

func (q queries) get(name string) string {
	s, ok := q[name]
	if !ok {
		panic("store: unknown query " + name)
	}
	return s
}
