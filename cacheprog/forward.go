package cacheprog

import (
	"context"
	"fmt"
	"io"
	"net"
)

// Forward is the guest side of the melange bridge: it connects to the
// host's socket and copies the go command's requests (in) to it and the
// host's responses back (out), byte for byte. It translates nothing: the
// host answers with guest paths and checks every request itself, so a
// forwarder replaced by the build gains nothing. It returns when the host
// closes the connection.
func Forward(ctx context.Context, socket string, in io.Reader, out io.Writer) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("cacheprog forwarder: %w (is melcache build --cacheprog serving it?)", err)
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, in)
		// The go command closed our stdin: tell the host no more requests
		// come; it answers what is in flight and closes.
		_ = conn.CloseWrite()
	}()
	if _, err := io.Copy(out, conn); err != nil {
		return fmt.Errorf("cacheprog forwarder: %s: %w", socket, err)
	}
	return nil
}
