package oci

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RegistryStore is a BlobMounter: a delta whose base lives in another
// repository of the same registry mounts the base's layers.
var _ BlobMounter = (*RegistryStore)(nil)

// Registry names the store's registry, "host[:port]".
func (s *RegistryStore) Registry() string { return s.repo.RegistryStr() }

// Sibling opens another repository of the same registry ("host/path", as
// String prints a store) with this store's transport, keychain and retry
// policy. The name comes from the user (--base) or from a base record the
// build could have written, so it is checked like a reference.
func (s *RegistryStore) Sibling(repository string) (BlobMounter, error) {
	r, err := name.NewRepository(repository)
	if err != nil {
		return nil, fmt.Errorf("repository %q: %v", repository, err)
	}
	if r.RegistryStr() != s.repo.RegistryStr() {
		return nil, fmt.Errorf("repository %s is not on registry %s (blob mounts work within one registry)", repository, s.repo.RegistryStr())
	}
	if err := checkRepository(r.RepositoryStr()); err != nil {
		return nil, err
	}
	// Registry.Repo keeps the registry's plain-HTTP setting.
	return &RegistryStore{repo: s.repo.Registry.Repo(r.RepositoryStr()), keychain: s.keychain, tr: s.tr,
		policy: s.policy, log: s.log, pusher: s.pusher, puller: s.puller}, nil
}

// MountBlob POSTs /v2/<repo>/blobs/uploads/?mount=<d>&from=<from>: 201
// means the registry made the blob present here, 202 that it declined and
// opened an upload session instead, which is cancelled (the caller uploads
// the blob through WriteBlob).
func (s *RegistryStore) MountBlob(ctx context.Context, d v1.Hash, from BlobMounter) (bool, error) {
	src, ok := from.(*RegistryStore)
	if !ok || src.Registry() != s.Registry() {
		return false, nil
	}
	rt, err := s.mountTransport(ctx, src.repo)
	if err != nil {
		return false, s.fail("mounting a blob in", err)
	}
	u := fmt.Sprintf("%s://%s/v2/%s/blobs/uploads/?mount=%s&from=%s", s.repo.Registry.Scheme(), s.repo.RegistryStr(),
		s.repo.RepositoryStr(), url.QueryEscape(d.String()), url.QueryEscape(src.repo.RepositoryStr()))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, http.NoBody)
	if err != nil {
		return false, err
	}
	client := &http.Client{Transport: rt}
	resp, err := client.Do(req)
	if err != nil {
		return false, s.fail("mounting a blob in", fmt.Errorf("blob %s from %s: %w", d, src.repo, err))
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
		return true, nil
	case http.StatusAccepted:
		s.cancelUpload(ctx, client, resp)
		return false, nil
	}
	return false, s.fail("mounting a blob in", fmt.Errorf("blob %s from %s: %w", d, src.repo, transport.CheckError(resp, http.StatusCreated, http.StatusAccepted)))
}

// cancelUpload deletes the upload session a declined mount opened, so it
// does not linger in the registry until its purge; a failure only leaves
// it there.
func (s *RegistryStore) cancelUpload(ctx context.Context, client *http.Client, resp *http.Response) {
	loc, err := resp.Location()
	if err != nil {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc.String(), http.NoBody)
	if err != nil {
		return
	}
	if r, err := client.Do(req); err == nil {
		r.Body.Close()
	}
}

// mountTransport is a transport authenticated to push to the store's
// repository and pull from src, the two scopes a mount needs (a token
// registry checks both), built once per source repository.
func (s *RegistryStore) mountTransport(ctx context.Context, src name.Repository) (http.RoundTripper, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt := s.mountRT[src.String()]; rt != nil {
		return rt, nil
	}
	auth, err := authn.Resolve(ctx, s.keychain, s.repo)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", s.repo.RegistryStr(), err)
	}
	scopes := []string{s.repo.Scope(transport.PushScope), src.Scope(transport.PullScope)}
	rt, err := transport.NewWithContext(ctx, s.repo.Registry, auth, s.tr, scopes)
	if err != nil {
		return nil, err
	}
	if s.mountRT == nil {
		s.mountRT = map[string]http.RoundTripper{}
	}
	s.mountRT[src.String()] = transport.NewUserAgent(rt, userAgent)
	return s.mountRT[src.String()], nil
}
