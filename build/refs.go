package build

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/melcache/melcache/oci"
)

// RefOptions configure OpenRef.
type RefOptions struct {
	// Insecure and CACert are as in oci.StoreOptions.
	Insecure bool
	CACert   string
	Timeouts oci.Timeouts
	Log      *slog.Logger
	// Key is a tag template (oci.ExpandKey) for a reference without a tag.
	Key        string
	KeyOptions oci.KeyOptions
	// KeepTag lets a reference's own tag or digest win over Key (build's
	// --pull and --push); otherwise giving both is a usage error (push and
	// pull, where --key sets the tag).
	KeepTag bool
}

// Target is a snapshot reference opened for push or pull.
type Target struct {
	Store oci.Store
	// Tag is the reference's tag, or Key's expansion; "" when neither
	// names one.
	Tag string
	// Digest is set for a digest-pinned reference.
	Digest string
}

// OpenRef parses raw ("" is the embedded store), opens its store and works
// out the tag from raw or o.Key. A reference that does not parse and a key
// that does not expand are *UsageError (Flag "--key" for the key); a store
// that does not open is returned as oci.OpenStore's error.
func OpenRef(ctx context.Context, raw string, o RefOptions) (Target, error) {
	ref, err := oci.ParseRef(raw, oci.RefOptions{Insecure: o.Insecure})
	if err != nil {
		return Target{}, &UsageError{Err: err}
	}
	t := Target{Tag: ref.Tag, Digest: ref.Digest}
	if o.Key != "" {
		switch {
		case ref.Tag == "" && ref.Digest == "":
			if t.Tag, err = oci.ExpandKey(o.Key, o.KeyOptions); err != nil {
				return Target{}, &UsageError{Flag: "--key", Err: err}
			}
		case !o.KeepTag:
			return Target{}, usageErrorf("%s already names a tag or digest; --key sets the tag: give the repository only", raw)
		}
	}
	s, tag, err := oci.OpenStore(ctx, ref, oci.StoreOptions{Insecure: o.Insecure, CACert: o.CACert, Logger: o.Log, Timeouts: o.Timeouts})
	if err != nil {
		return Target{}, err
	}
	if t.Tag == "" {
		t.Tag = tag
	}
	t.Store = s
	return t, nil
}

// ExpandRestoreKeys expands restore-key flags: each may hold several
// comma-separated prefixes, each a key template (oci.ExpandKey) but not
// cut to a tag, since a prefix may end in '-'. Empty entries are dropped;
// a template that does not expand is a *UsageError.
func ExpandRestoreKeys(flags []string, o oci.KeyOptions) ([]string, error) {
	var keys []string
	for _, k := range flags {
		for _, p := range strings.Split(k, ",") {
			if p = strings.TrimSpace(p); p == "" {
				continue
			}
			e, err := oci.ExpandKey(p, o)
			if err != nil {
				return nil, &UsageError{Flag: "--restore-keys", Err: err}
			}
			keys = append(keys, e)
		}
	}
	return keys, nil
}

// openRef opens build's --pull or --push reference (flag names it). An
// empty arg gives no store; a store that does not open is a cache problem,
// except a refused plain-HTTP registry, which is bad input.
func (b *run) openRef(ctx context.Context, arg, flag string) (oci.Store, string, error) {
	if arg == "" {
		return nil, "", nil
	}
	t, err := OpenRef(ctx, arg, RefOptions{Insecure: b.cfg.Insecure, CACert: b.cfg.CACert, Timeouts: b.cfg.Timeouts, Log: b.log,
		Key: b.cfg.Key, KeyOptions: b.keyOptions(), KeepTag: true})
	var ue *UsageError
	var ph *oci.PlainHTTPError
	switch {
	case errors.As(err, &ue) && ue.Flag == "":
		return nil, "", &UsageError{Flag: flag, Err: ue.Err}
	case errors.As(err, &ue):
		return nil, "", err
	case errors.As(err, &ph):
		return nil, "", &UsageError{Flag: flag, Err: err}
	case err != nil:
		if err := b.cacheProblem("opening "+arg, err); err != nil {
			return nil, "", err
		}
		return nil, "", nil
	}
	if t.Digest != "" {
		if flag == "--push" {
			return nil, "", usageErrorf("--push needs a tag, not a digest: %s", arg)
		}
		t.Tag = t.Digest
	}
	return t.Store, t.Tag, nil
}

// keyOptions expand key templates; {arch} comes from melange's --arch and
// {hash:FILE} reads FILE from the build's source dir, as melange would.
func (b *run) keyOptions() oci.KeyOptions {
	return oci.KeyOptions{Arch: b.cfg.MelangeArgs.Arch, Config: b.cfg.Config, Dir: b.cfg.SourceDir(),
		Go: b.goVer.KeyFunc(b.ctx)}
}

// describeMiss is the notice for a pull that found no snapshot.
func describeMiss(ref string, s oci.Store, keys []string) string {
	switch {
	case len(keys) == 0:
		return fmt.Sprintf("no snapshot for %s in %s: building cold", ref, s)
	case ref == "":
		return fmt.Sprintf("no snapshot in %s matches the restore keys %s: building cold", s, strings.Join(keys, " "))
	}
	return fmt.Sprintf("no snapshot for %s in %s, nor one matching the restore keys %s: building cold", ref, s, strings.Join(keys, " "))
}
