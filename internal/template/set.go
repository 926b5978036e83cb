package template

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Set holds many workflows, each in one or more versions.
// It is immutable once built and safe for concurrent use.
type Set struct {
	byName map[string][]*Template // "namespace/name" -> versions, ascending
	all    []*Template            // sorted by namespace, name, version
}

// NewSet builds a Set. Two templates with the same namespace, name and
// version are an error naming both sources.
func NewSet(ts ...*Template) (*Set, error) {
	s := &Set{byName: map[string][]*Template{}}
	var errs Errors
	byKey := map[string]*Template{}
	for _, t := range ts {
		if t == nil {
			continue
		}
		if prev, dup := byKey[t.Key()]; dup {
			errs = append(errs, &Error{File: t.Source, Msg: fmt.Sprintf(
				"duplicate template %s: defined in both %s and %s", t.Key(), prev.Source, t.Source)})
			continue
		}
		byKey[t.Key()] = t
		s.all = append(s.all, t)
	}
	sort.SliceStable(s.all, func(i, j int) bool { return less(s.all[i], s.all[j]) })
	for _, t := range s.all {
		k := t.Namespace + "/" + t.Name
		s.byName[k] = append(s.byName[k], t)
	}
	if len(errs) == 0 {
		// Child workflows must be in the set (docs/architecture.md, "Child workflows").
		errs = checkChildren(s)
	}
	return s, errs.err()
}

func less(a, b *Template) bool {
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return CompareVersions(a.Version, b.Version) < 0
}

// Get returns one version of a workflow. An empty version means the highest
// one: the highest release, or the highest pre-release when there is no
// release. The error is a *NotFoundError (ErrNotFound) naming what was asked for.
func (s *Set) Get(namespace, name, version string) (*Template, error) {
	if s == nil {
		return nil, &NotFoundError{Namespace: namespace, Name: name, Version: version}
	}
	vs := s.byName[namespace+"/"+name]
	if len(vs) == 0 {
		return nil, &NotFoundError{Namespace: namespace, Name: name, Version: version}
	}
	if version == "" {
		for i := len(vs) - 1; i >= 0; i-- {
			if !isPrerelease(vs[i].Version) {
				return vs[i], nil
			}
		}
		return vs[len(vs)-1], nil
	}
	want := strings.TrimPrefix(version, "v")
	for _, t := range vs {
		if t.Version == want {
			return t, nil
		}
	}
	have := make([]string, len(vs))
	for i, t := range vs {
		have[i] = t.Version
	}
	return nil, &NotFoundError{Namespace: namespace, Name: name, Version: version, Versions: have}
}

// List returns every template, sorted by namespace, name and version (ascending).
func (s *Set) List() []*Template {
	if s == nil {
		return nil
	}
	return append([]*Template(nil), s.all...)
}

// Versions returns the versions of one workflow, ascending; nil when unknown.
func (s *Set) Versions(namespace, name string) []*Template {
	if s == nil {
		return nil
	}
	vs := s.byName[namespace+"/"+name]
	if len(vs) == 0 {
		return nil
	}
	return append([]*Template(nil), vs...)
}

// Len is the number of templates in the set.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.all)
}

func isTemplateFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yaml" || ext == ".yml"
}

// LoadDir loads every *.yaml and *.yml file under dir, recursively (hidden
// directories are skipped). Every problem in every file is collected, and
// duplicates across files are errors naming both. On error the returned Set
// still holds the templates that loaded cleanly (it is never nil).
func LoadDir(dir string, opts Options) (*Set, error) {
	var errs Errors
	var ts []*Template
	info, err := os.Stat(dir)
	if err != nil {
		empty, _ := NewSet()
		return empty, Errors{{File: dir, Msg: err.Error()}}
	}
	if !info.IsDir() {
		empty, _ := NewSet()
		return empty, Errors{{File: dir, Msg: "not a directory"}}
	}
	aliasPath := filepath.Join(dir, AliasesFile)
	if data, err := os.ReadFile(aliasPath); err == nil {
		if opts, err = withAliasFile(opts, aliasPath, data); err != nil {
			empty, _ := NewSet()
			return empty, err
		}
	}
	walkErr := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, &Error{File: path, Msg: err.Error()})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !isTemplateFile(d.Name()) || path == aliasPath {
			return nil
		}
		t, err := LoadFile(path, opts)
		if err != nil {
			errs = append(errs, asErrors(path, err)...)
			return nil
		}
		ts = append(ts, t)
		return nil
	})
	if walkErr != nil {
		errs = append(errs, &Error{File: dir, Msg: walkErr.Error()})
	}
	return finishSet(ts, errs)
}

// LoadFS loads every *.yaml and *.yml file of fsys, like LoadDir. Templates
// from an embed.FS get the Source "embedded:<path>".
func LoadFS(fsys fs.FS, opts Options) (*Set, error) {
	var errs Errors
	var ts []*Template
	_, embedded := fsys.(embed.FS)
	if _, ok := fsys.(*embed.FS); ok {
		embedded = true
	}
	if data, err := fs.ReadFile(fsys, AliasesFile); err == nil {
		if opts, err = withAliasFile(opts, AliasesFile, data); err != nil {
			empty, _ := NewSet()
			return empty, err
		}
	}
	walkErr := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, &Error{File: path, Msg: err.Error()})
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if path != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !isTemplateFile(d.Name()) || path == AliasesFile {
			return nil
		}
		source := path
		if embedded {
			source = "embedded:" + path
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			errs = append(errs, &Error{File: source, Msg: err.Error()})
			return nil
		}
		t, err := Parse(source, data, opts)
		if err != nil {
			errs = append(errs, asErrors(source, err)...)
			return nil
		}
		ts = append(ts, t)
		return nil
	})
	if walkErr != nil {
		errs = append(errs, &Error{Msg: walkErr.Error()})
	}
	return finishSet(ts, errs)
}

func finishSet(ts []*Template, errs Errors) (*Set, error) {
	set, err := NewSet(ts...)
	if err != nil {
		errs = append(errs, asErrors("", err)...)
	}
	return set, gatherUnknownHandlers(errs).err()
}

// withAliasFile returns opts with the aliases of an aliases file added
// under Options.HandlerAliases (which win).
func withAliasFile(opts Options, source string, data []byte) (Options, error) {
	m, err := ParseAliases(source, data)
	if err != nil {
		return opts, err
	}
	for k, v := range opts.HandlerAliases {
		m[k] = v
	}
	opts.HandlerAliases = m
	return opts, nil
}

func asErrors(file string, err error) Errors {
	if es, ok := err.(Errors); ok {
		return es
	}
	if e, ok := err.(*Error); ok {
		return Errors{e}
	}
	return Errors{{File: file, Msg: err.Error()}}
}
