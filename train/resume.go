package train

import (
	"encoding/json"
	"fmt"
	"slices"
)

// resumable lists the Config fields (JSON names) that may change when a run
// is resumed: how long it trains and how it logs, checkpoints, evaluates,
// guards against divergence and uses the machine, never what it computes.
// It is the one statement of the rule: CheckResume and ResumeConfig apply
// it, and the CLI asks MayChangeOnResume which flags --resume accepts.
var resumable = []string{"checkpoint_every", "eval_every", "iters", "keep", "log_every", "max_graphs", "max_loss", "workers"}

// MayChangeOnResume reports whether the Config field with JSON name field
// may differ between a run and its resumption.
func MayChangeOnResume(field string) bool { return slices.Contains(resumable, field) }

// CheckResume returns nil if next continues the run saved as prev, else an
// error naming the first field (JSON name, in sorted order) that differs
// and may not change on resume (MayChangeOnResume).
func CheckResume(prev, next Config) error {
	a, err := fieldsOf(prev)
	if err != nil {
		return err
	}
	b, err := fieldsOf(next)
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if MayChangeOnResume(k) {
			continue
		}
		if x, y := string(a[k]), string(b[k]); x != y {
			return fmt.Errorf("%q is %s, the saved run has %s", k, orNone(y), orNone(x))
		}
	}
	return nil
}

// ResumeConfig returns the configuration of a resumed run: saved (its
// run.json) with the fields named in set (JSON names) taken from given. A
// field in set that may not change on resume (MayChangeOnResume) is an
// error naming it; the result is not validated.
func ResumeConfig(saved, given Config, set []string) (Config, error) {
	for _, f := range set {
		if !MayChangeOnResume(f) {
			return Config{}, fmt.Errorf("train: resume: %q cannot change (the fields that may: %v)", f, resumable)
		}
	}
	a, err := fieldsOf(saved)
	if err != nil {
		return Config{}, err
	}
	b, err := fieldsOf(given)
	if err != nil {
		return Config{}, err
	}
	for _, f := range set {
		if v, ok := b[f]; ok {
			a[f] = v
		} else {
			delete(a, f) // omitted: the zero value
		}
	}
	js, err := json.Marshal(a)
	if err != nil {
		return Config{}, fmt.Errorf("train: resume: %w", err)
	}
	var c Config
	if err := json.Unmarshal(js, &c); err != nil {
		return Config{}, fmt.Errorf("train: resume: %w", err)
	}
	return c, nil
}

// fieldsOf returns c's top-level JSON fields, each in its JSON form.
func fieldsOf(c Config) (map[string]json.RawMessage, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return m, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
