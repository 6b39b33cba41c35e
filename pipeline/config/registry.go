package config

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/backfillhq/backfill/pipeline"
	"go.yaml.in/yaml/v3"
)

// PluginKind says where a plugin goes in a pipeline.
type PluginKind int

const (
	SourceKind PluginKind = iota
	TransformKind
	SinkKind
)

func (k PluginKind) String() string {
	switch k {
	case SourceKind:
		return "source"
	case TransformKind:
		return "transform"
	}
	return "sink"
}

// Plugin is a registered source, transform or sink: its declared config
// and its constructor. Exactly one of NewSource, NewTransform, NewSink is
// set, matching Kind.
type Plugin struct {
	Name         string
	Kind         PluginKind
	Spec         *Spec
	NewSource    func(conf *Conf, env *pipeline.Env) (pipeline.Source, error)
	NewTransform func(conf *Conf, env *pipeline.Env) (pipeline.Transform, error)
	NewSink      func(conf *Conf, env *pipeline.Env) (pipeline.Sink, error)
}

// Registry maps plugin names to plugins. The zero value is not usable: use
// NewRegistry, or Default for the plugins that register themselves.
type Registry struct {
	mu      sync.RWMutex
	plugins map[PluginKind]map[string]*Plugin
}

// NewRegistry returns an empty registry (tests build their own).
func NewRegistry() *Registry {
	return &Registry{plugins: map[PluginKind]map[string]*Plugin{}}
}

// Default is the registry the plugins' init functions register into.
var Default = NewRegistry()

// Register adds plugins. A duplicate name of the same kind, a plugin
// without a spec or a constructor, or a malformed spec panics: all are
// programming errors. Every plugin package declares its plugins the same
// way, in a function that builds them afresh, and registers them into
// Default from init:
//
//	func Plugins() []config.Plugin { return []config.Plugin{config.SinkPlugin("file", spec(), New)} }
//	func init() { config.Default.Register(Plugins()...) }
func (r *Registry) Register(ps ...Plugin) {
	for _, p := range ps {
		r.register(p)
	}
}

func (r *Registry) register(p Plugin) {
	if p.Name == "" || p.Spec == nil {
		panic("pipeline: Register of a plugin without a name or spec")
	}
	var ok bool
	switch p.Kind {
	case SourceKind:
		ok = p.NewSource != nil
	case TransformKind:
		ok = p.NewTransform != nil
	case SinkKind:
		ok = p.NewSink != nil
	}
	if !ok {
		panic(fmt.Sprintf("pipeline: %s %q registered without its constructor", p.Kind, p.Name))
	}
	p.Spec.root.validateSpec(p.Name + ".")
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.plugins[p.Kind]
	if m == nil {
		m = map[string]*Plugin{}
		r.plugins[p.Kind] = m
	}
	if _, dup := m[p.Name]; dup {
		panic(fmt.Sprintf("pipeline: %s %q registered twice", p.Kind, p.Name))
	}
	m[p.Name] = &p
}

// SourcePlugin declares a source: its name, its config spec (the one
// place its fields, defaults and rules are written) and its constructor.
func SourcePlugin(name string, spec *Spec, fn func(*Conf, *pipeline.Env) (pipeline.Source, error)) Plugin {
	return Plugin{Name: name, Kind: SourceKind, Spec: spec, NewSource: fn}
}

// TransformPlugin declares a transform (see SourcePlugin).
func TransformPlugin(name string, spec *Spec, fn func(*Conf, *pipeline.Env) (pipeline.Transform, error)) Plugin {
	return Plugin{Name: name, Kind: TransformKind, Spec: spec, NewTransform: fn}
}

// SinkPlugin declares a sink (see SourcePlugin).
func SinkPlugin(name string, spec *Spec, fn func(*Conf, *pipeline.Env) (pipeline.Sink, error)) Plugin {
	return Plugin{Name: name, Kind: SinkKind, Spec: spec, NewSink: fn}
}

// Lookup finds a plugin.
func (r *Registry) Lookup(kind PluginKind, name string) (*Plugin, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	p, ok := r.plugins[kind][name]
	return p, ok
}

// Names lists the plugins of a kind, sorted.
func (r *Registry) Names(kind PluginKind) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.plugins[kind]))
	for n := range r.plugins[kind] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// All lists every plugin, sources first, then transforms, then sinks.
func (r *Registry) All() []*Plugin {
	var out []*Plugin
	for _, k := range []PluginKind{SourceKind, TransformKind, SinkKind} {
		for _, n := range r.Names(k) {
			p, _ := r.Lookup(k, n)
			out = append(out, p)
		}
	}
	return out
}

// CheckExamples parses the spec's examples as the plugin's config, with
// every ${VAR} set: an example the docs show that no longer parses is a
// bug.
func (p *Plugin) CheckExamples() error {
	var errs []error
	for _, ex := range p.Spec.examples {
		prs := &parser{file: fmt.Sprintf("%s %s, example %q", p.Kind, p.Name, ex.Title), reg: NewRegistry(),
			lookup: func(string) (string, bool) { return "1", true }}
		var doc yaml.Node
		if err := yaml.Unmarshal([]byte(ex.YAML), &doc); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", prs.file, err))
			continue
		}
		if len(doc.Content) == 0 {
			errs = append(errs, fmt.Errorf("%s is empty", prs.file))
			continue
		}
		prs.interpolate(&doc, "")
		prs.object(p.Spec.root, doc.Content[0], "")
		for _, e := range prs.errs {
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}
