package oci

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// userAgent identifies melcache in registry logs.
const userAgent = "melcache"

// maxBlobResumes caps how often one blob download is resumed after being
// cut mid-stream. Each resume continues where the last one stopped, so a
// flaky link still finishes a large blob; a link that cuts it this often is
// not going to, and the user is better served by the error.
const maxBlobResumes = 16

// RegistryStore is a registry repository used as a Store, through
// go-containerregistry's remote package with our own transport: the
// plain-HTTP rule, retries with back-off, and resumed blob downloads.
type RegistryStore struct {
	repo     name.Repository
	keychain authn.Keychain
	tr       http.RoundTripper // policy + retry + base
	policy   RetryPolicy
	log      *slog.Logger
	pusher   *remote.Pusher
	puller   *remote.Puller

	mu     sync.Mutex
	pullRT http.RoundTripper // authenticated, pull scope
	pushRT http.RoundTripper // authenticated, push+pull scope
	// mountRT: authenticated to push here and pull from a mount's source
	// repository, by source (store_registry_mount.go).
	mountRT map[string]http.RoundTripper
}

// NewRegistryStore returns the store for repo. It connects to nothing until
// the first call.
func NewRegistryStore(repo name.Repository, o StoreOptions) (*RegistryStore, error) {
	s := &RegistryStore{repo: repo, keychain: o.Keychain, policy: o.Retry.withDefaults(), log: o.logger()}
	if s.keychain == nil {
		s.keychain = authn.DefaultKeychain
	}
	base := o.Transport
	if base == nil {
		var err error
		if base, err = newBaseTransport(o.Insecure, o.CACert, o.Timeouts); err != nil {
			return nil, err
		}
	}
	s.tr = newTransport(base, o.Insecure, s.policy, o.Timeouts, s.log)
	opts := []remote.Option{
		remote.WithTransport(s.tr),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithUserAgent(userAgent),
		// Our transport retries; ggcr's own retries would multiply
		// the attempts (and its upload retry re-reads the blob with no
		// say from us), so they are turned off.
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	}
	var err error
	if s.pusher, err = remote.NewPusher(opts...); err != nil {
		return nil, err
	}
	if s.puller, err = remote.NewPuller(opts...); err != nil {
		return nil, err
	}
	return s, nil
}

// String names the repository: "127.0.0.1:5000/cache".
func (s *RegistryStore) String() string { return s.repo.String() }

// Repository returns the repository the store talks to.
func (s *RegistryStore) Repository() name.Repository { return s.repo }

// fail turns a registry error into one plain line that names the
// operation, the repository and the reason (translate), wrapping
// ErrNotFound, ErrDeleteUnsupported and authentication failures so callers
// can test for them.
func (s *RegistryStore) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	return translate(s.repo.RegistryStr(), op, s.repo.String(), "", err)
}

// authTransport returns a transport authenticated for the repository with
// push (and pull) or pull scope, built once and reused: the handshake (ping,
// token) costs a round trip or two.
func (s *RegistryStore) authTransport(ctx context.Context, push bool) (http.RoundTripper, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.pullRT
	scope := s.repo.Scope(transport.PullScope)
	if push {
		p, scope = &s.pushRT, s.repo.Scope(transport.PushScope)
	}
	if *p != nil {
		return *p, nil
	}
	auth, err := authn.Resolve(ctx, s.keychain, s.repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", s.repo.RegistryStr(), err)
	}
	rt, err := transport.NewWithContext(ctx, s.repo.Registry, auth, s.tr, []string{scope})
	if err != nil {
		return nil, err
	}
	*p = transport.NewUserAgent(rt, userAgent)
	return *p, nil
}

func (s *RegistryStore) blobURL(d v1.Hash) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", s.repo.Registry.Scheme(), s.repo.RegistryStr(), s.repo.RepositoryStr(), d)
}

// HasBlob HEADs the blob.
func (s *RegistryStore) HasBlob(ctx context.Context, d v1.Hash) (bool, error) {
	ok, err := s.hasBlob(ctx, d, false)
	return ok, s.fail("checking blobs in", err)
}

func (s *RegistryStore) hasBlob(ctx context.Context, d v1.Hash, push bool) (bool, error) {
	rt, err := s.authTransport(ctx, push)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, s.blobURL(d), nil)
	if err != nil {
		return false, err
	}
	resp, err := (&http.Client{Transport: rt}).Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, transport.CheckError(resp, http.StatusOK)
}

// blobLayer is the v1.Layer remote.WriteLayer uploads: its compressed
// stream is the caller's open(), read once per attempt, never buffered.
type blobLayer struct {
	d       v1.Hash
	size    int64
	open    func() (io.ReadCloser, error)
	attempt *streamAttempt
}

func (l *blobLayer) Digest() (v1.Hash, error)            { return l.d, nil }
func (l *blobLayer) Size() (int64, error)                { return l.size, nil }
func (l *blobLayer) MediaType() (types.MediaType, error) { return "application/octet-stream", nil }
func (l *blobLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.open()
	if err != nil {
		l.attempt.local.Store(true)
		return nil, err
	}
	return &localReader{rc: rc, a: l.attempt}, nil
}

// localReader marks read errors of the caller's blob source, which a new
// upload attempt would not fix.
type localReader struct {
	rc io.ReadCloser
	a  *streamAttempt
}

func (r *localReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		r.a.local.Store(true)
	}
	return n, err
}

func (r *localReader) Close() error { return r.rc.Close() }

// WriteBlob HEADs the blob and, when the registry lacks it, uploads it with
// remote's Pusher. An upload cut mid-stream (which the transport cannot
// replay) restarts from open(), after a HEAD that skips it when the cut came
// after the registry had everything.
func (s *RegistryStore) WriteBlob(ctx context.Context, d v1.Hash, size int64, open func() (io.ReadCloser, error)) (bool, error) {
	const op = "pushing blob to"
	stalls := 0
	for n := 1; ; n++ {
		ok, err := s.hasBlob(ctx, d, true)
		if err != nil {
			return false, s.fail(op, err)
		}
		if ok {
			return n == 1, nil
		}
		a := &streamAttempt{}
		l, err := partial.CompressedToLayer(&blobLayer{d: d, size: size, open: open, attempt: a})
		if err != nil {
			return false, err
		}
		err = s.pusher.Upload(withStreamAttempt(ctx, a), s.repo, l)
		if err == nil {
			return false, nil
		}
		if ctx.Err() == nil && !a.local.Load() {
			// The commit may have landed with only its answer lost (a
			// replayed commit then finds its session gone): the
			// registry having the blob is all that matters.
			if ok, herr := s.hasBlob(ctx, d, true); herr == nil && ok {
				return false, nil
			}
		}
		if isStall(err) {
			stalls++
		}
		if !a.failed.Load() || a.local.Load() || n >= s.policy.Attempts || stalls >= s.policy.Stalls || ctx.Err() != nil {
			return false, s.fail(op, fmt.Errorf("blob %s: %w", d, err))
		}
		wait := s.policy.delay(n)
		s.log.Debug("retrying blob upload", "repo", s.repo.String(), "digest", d.String(), "attempt", n+1, "after", wait, "reason", err.Error())
		if err := sleepCtx(ctx, wait); err != nil {
			return false, s.fail(op, err)
		}
	}
}

// ReadBlob GETs the blob. A download cut mid-stream is resumed with a Range
// request from the offset reached (or, when the registry ignores Range, by
// re-reading and discarding what was already delivered), so the caller sees
// one continuous stream and its digest check covers every byte.
func (s *RegistryStore) ReadBlob(ctx context.Context, d v1.Hash) (io.ReadCloser, error) {
	rt, err := s.authTransport(ctx, false)
	if err != nil {
		return nil, s.fail("pulling blob from", err)
	}
	r := &resumingReader{ctx: ctx, s: s, d: d, client: &http.Client{Transport: rt}, end: -1, total: -1}
	if err := r.open(); err != nil {
		return nil, s.fail("pulling blob from", fmt.Errorf("blob %s: %w", d, err))
	}
	return r, nil
}

// resumingReader reads a blob over as many GETs as it takes.
type resumingReader struct {
	ctx    context.Context
	s      *RegistryStore
	d      v1.Hash
	client *http.Client

	body       io.ReadCloser
	off        int64 // blob offset reached: the next byte delivered
	end        int64 // blob offset to stop at (a range read), -1 for the blob's end
	total      int64 // blob size once known, -1 before
	resumes    int
	noProgress int   // resumes since the last byte arrived
	stalls     int   // downloads that ended in a timeout
	cause      error // why the stream last broke
	err        error // sticky: the reader gave up
}

// open issues a GET from r.off.
func (r *resumingReader) open() error {
	req, err := http.NewRequestWithContext(r.ctx, http.MethodGet, r.s.blobURL(r.d), nil)
	if err != nil {
		return err
	}
	switch {
	case r.end >= 0:
		req.Header.Set("Range", "bytes="+strconv.FormatInt(r.off, 10)+"-"+strconv.FormatInt(r.end-1, 10))
	case r.off > 0:
		req.Header.Set("Range", "bytes="+strconv.FormatInt(r.off, 10)+"-")
	}
	// Ask for the bytes as stored: Go would otherwise request gzip and
	// decode it transparently, and a Range offset into a re-encoded
	// response would not match the blob's.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength >= 0 {
			r.total = resp.ContentLength
		}
		if r.off > 0 {
			// Range ignored: skip what the caller already has.
			if _, err := io.CopyN(io.Discard, resp.Body, r.off); err != nil {
				resp.Body.Close()
				return err
			}
		}
	case http.StatusPartialContent:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != r.off {
			resp.Body.Close()
			return fmt.Errorf("resuming at byte %d: registry answered Content-Range %q", r.off, resp.Header.Get("Content-Range"))
		}
		if total >= 0 {
			r.total = total
		}
	default:
		defer resp.Body.Close()
		return transport.CheckError(resp, http.StatusOK, http.StatusPartialContent)
	}
	r.body = resp.Body
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(s string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	first, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, total, true
}

func (r *resumingReader) Read(p []byte) (int, error) {
	for {
		if r.err != nil {
			return 0, r.err
		}
		if r.end >= 0 {
			if r.off >= r.end {
				return 0, io.EOF
			}
			p = p[:min(int64(len(p)), r.end-r.off)]
		}
		if r.body == nil {
			if err := r.resume(); err != nil {
				return 0, err
			}
			continue
		}
		n, err := r.body.Read(p)
		r.off += int64(n)
		if n > 0 {
			r.noProgress = 0
		}
		if r.end >= 0 && r.off >= r.end && err == nil {
			err = io.EOF // the range is delivered; a 200 answer has more
		}
		if r.total >= 0 && r.off > r.total {
			r.err = r.s.fail("pulling blob from", fmt.Errorf("blob %s: more bytes than the %d declared", r.d, r.total))
			return n, r.err
		}
		if err == io.EOF && (r.end >= 0 && r.off < r.end || r.end < 0 && r.total >= 0 && r.off < r.total) {
			err = io.ErrUnexpectedEOF // connection closed before the declared size
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		if !retryableErr(err) || r.ctx.Err() != nil {
			r.err = r.s.fail("pulling blob from", fmt.Errorf("blob %s at byte %d: %w", r.d, r.off, err))
			return n, r.err
		}
		r.body.Close()
		r.body, r.cause = nil, err
		if isStall(err) {
			r.stalls++
		}
		if n > 0 {
			return n, nil // resume on the next Read
		}
	}
}

// resume waits and reopens the stream at r.off, or records why it gives up.
// A reopen that fails transiently leaves r.body nil, so the next Read
// tries again within the same budget.
func (r *resumingReader) resume() error {
	r.resumes++
	r.noProgress++
	if r.resumes > maxBlobResumes || r.noProgress > r.s.policy.Attempts || r.stalls >= r.s.policy.Stalls {
		r.err = r.s.fail("pulling blob from", &exhaustedError{err: fmt.Errorf("blob %s cut at byte %d, gave up after %d resumes: %w", r.d, r.off, r.resumes-1, r.cause)})
		return r.err
	}
	wait := r.s.policy.delay(r.noProgress)
	r.s.log.Debug("resuming blob download", "repo", r.s.repo.String(), "digest", r.d.String(), "offset", r.off, "after", wait, "reason", fmt.Sprint(r.cause))
	if err := sleepCtx(r.ctx, wait); err != nil {
		r.err = err
		return err
	}
	if err := r.open(); err != nil {
		if retryableErr(err) {
			r.cause = err
			if isStall(err) {
				r.stalls++
			}
			return nil
		}
		r.err = r.s.fail("pulling blob from", fmt.Errorf("blob %s resuming at byte %d: %w", r.d, r.off, err))
		return r.err
	}
	return nil
}

func (r *resumingReader) Close() error {
	if r.err == nil {
		r.err = fmt.Errorf("blob %s: read after close", r.d)
	}
	if r.body != nil {
		b := r.body
		r.body = nil
		return b.Close()
	}
	return nil
}

// rawManifest is a manifest stored as given: its bytes and media type.
type rawManifest struct {
	b  []byte
	mt string
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.b, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return types.MediaType(m.mt), nil }

// PutManifest PUTs the manifest bytes with their media type, by tag when
// tag is set, else by digest. The registry checks that every blob the
// manifest names is there, so blobs go first.
func (s *RegistryStore) PutManifest(ctx context.Context, tag, mediaType string, manifest []byte) (v1.Hash, error) {
	d, _, err := v1.SHA256(bytes.NewReader(manifest))
	if err != nil {
		return v1.Hash{}, err
	}
	var ref name.Reference = s.repo.Digest(d.String())
	if tag != "" {
		if err := checkTag(tag); err != nil {
			return v1.Hash{}, fmt.Errorf("pushing to %s: %w", s.repo, err)
		}
		ref = s.repo.Tag(tag)
	}
	if err := s.pusher.Push(ctx, ref, rawManifest{manifest, mediaType}); err != nil {
		return v1.Hash{}, s.fail("pushing to", err)
	}
	return d, nil
}

// GetManifest GETs a manifest by tag or digest; ggcr verifies the bytes
// against a requested digest.
func (s *RegistryStore) GetManifest(ctx context.Context, tagOrDigest string) (string, []byte, v1.Hash, error) {
	var ref name.Reference
	if strings.HasPrefix(tagOrDigest, "sha256:") {
		ref = s.repo.Digest(tagOrDigest)
	} else {
		if err := checkTag(tagOrDigest); err != nil {
			return "", nil, v1.Hash{}, fmt.Errorf("pulling from %s: %w", s.repo, err)
		}
		ref = s.repo.Tag(tagOrDigest)
	}
	desc, err := s.puller.Get(ctx, ref)
	if err != nil {
		what := "no such tag"
		if strings.HasPrefix(tagOrDigest, "sha256:") {
			what = "no such manifest"
		}
		return "", nil, v1.Hash{}, translate(s.repo.RegistryStr(), "", ref.String(), what, err)
	}
	return string(desc.MediaType), desc.Manifest, desc.Digest, nil
}

// Tags lists the repository's tags, sorted.
func (s *RegistryStore) Tags(ctx context.Context) ([]string, error) {
	tags, err := s.puller.List(ctx, s.repo)
	if err != nil {
		return nil, s.fail("listing tags of", err)
	}
	sort.Strings(tags)
	return tags, nil
}

// DeleteManifest deletes a manifest by digest. Registries that do not allow
// deletes (distribution's default) answer 405 or UNSUPPORTED, reported as
// ErrDeleteUnsupported.
func (s *RegistryStore) DeleteManifest(ctx context.Context, d v1.Hash) error {
	return s.fail("deleting from", s.pusher.Delete(ctx, s.repo.Digest(d.String())))
}
