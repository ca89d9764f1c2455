package engine

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// execPoll is how often Exec asks for the exit code of a command whose
// output has ended but that the engine still reports running.
const execPoll = 20 * time.Millisecond

// Exec runs argv inside the running container id, attached, as `docker
// exec` does (Podman's compat API does not report the end of a detached
// exec): it creates the exec instance, starts it on a hijacked
// connection, copies its stdout and stderr into the writers until the
// command ends, then returns its exit code. ctx bounds all of it; a hung
// command ends with ctx.
func (c *Client) Exec(ctx context.Context, id string, argv []string, stdout, stderr io.Writer) (int, error) {
	op := fmt.Sprintf("exec %q in container %q", argv[0], id)
	var cr struct {
		ID string `json:"Id"`
	}
	in := map[string]any{"AttachStdout": true, "AttachStderr": true, "Cmd": argv}
	if err := c.call(ctx, op, http.MethodPost, containerPath(id, "/exec"), nil, in, &cr); err != nil {
		return 0, err
	}
	if cr.ID == "" {
		return 0, fmt.Errorf("%s: %s gave no exec id", op, c.host)
	}
	stream, err := c.hijack(ctx, op, "/exec/"+url.PathEscape(cr.ID)+"/start", map[string]any{"Detach": false, "Tty": false})
	if err != nil {
		return 0, err
	}
	err = demux(stream, stdout, stderr)
	stream.Close()
	if ctx.Err() != nil {
		return 0, fmt.Errorf("%s: %w", op, ctx.Err())
	}
	if err != nil {
		return 0, fmt.Errorf("%s: reading its output from %s: %w", op, c.host, err)
	}
	for {
		var ir struct {
			Running  bool `json:"Running"`
			ExitCode *int `json:"ExitCode"`
		}
		if err := c.call(ctx, op, http.MethodGet, "/exec/"+url.PathEscape(cr.ID)+"/json", nil, nil, &ir); err != nil {
			return 0, err
		}
		if !ir.Running && ir.ExitCode != nil {
			return *ir.ExitCode, nil
		}
		// The output ended a moment before the engine noted the exit.
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("%s: its exit code: %w", op, ctx.Err())
		case <-time.After(execPoll):
		}
	}
}

// hijacked is the raw stream of a hijacked connection.
type hijacked struct {
	io.Reader
	conn net.Conn
	stop func() bool
}

func (h *hijacked) Close() error {
	h.stop()
	return h.conn.Close()
}

// hijack POSTs to path on a connection of its own, asking the engine to
// upgrade it to a raw stream (Connection: Upgrade, Upgrade: tcp, as the
// official client does), and returns the stream after the answer's head.
// The engine answers 101 (or 200 from engines that ignore the upgrade)
// and then writes the stream until the command ends. ctx closes the
// connection.
func (c *Client) hijack(ctx context.Context, op, path string, in any) (*hijacked, error) {
	v, err := c.apiVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req, err := c.request(ctx, http.MethodPost, c.base+"/v"+v+path, nil, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "tcp")
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, c.connError(op, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*hijacked, error) {
		stop()
		conn.Close()
		return nil, err
	}
	if err := req.Write(conn); err != nil {
		return fail(c.connError(op, err))
	}
	// The head is bounded; the stream after it is not (the caller's ctx
	// bounds it, and demux holds none of it).
	lim := &limitReader{r: conn, n: maxHead}
	br := bufio.NewReader(lim)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		if lim.over {
			return fail(fmt.Errorf("%s: the answer's head from %s is larger than %d KB", op, c.host, maxHead>>10))
		}
		if ctx.Err() != nil {
			return fail(c.connError(op, ctx.Err()))
		}
		return fail(c.connError(op, err))
	}
	switch resp.StatusCode {
	case http.StatusSwitchingProtocols:
		lim.n = 1<<63 - 1
		return &hijacked{Reader: br, conn: conn, stop: stop}, nil
	case http.StatusOK:
		lim.n = 1<<63 - 1
		return &hijacked{Reader: resp.Body, conn: conn, stop: stop}, nil
	default:
		err := c.check(op, resp)
		if err == nil {
			err = &Error{Op: op, Host: c.host, Status: resp.StatusCode, Message: "unexpected answer to an upgrade"}
		}
		return fail(err)
	}
}

// Stream numbers of the multiplexed stream's frames.
const (
	streamStdin  = 0
	streamStdout = 1
	streamStderr = 2
	streamSystem = 3 // an error of the engine's, ending the stream
)

// demux copies a multiplexed stream (frames of an 8-byte header — stream
// number, three zero bytes, a big-endian uint32 length — and that many
// bytes) into stdout and stderr, through one fixed buffer: a frame's
// length never decides an allocation. It returns nil at the stream's end
// on a frame boundary.
func demux(r io.Reader, stdout, stderr io.Writer) error {
	var hdr [8]byte
	buf := make([]byte, 32<<10)
	var sys []byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("a frame header: %w", err)
		}
		var w io.Writer
		switch hdr[0] {
		case streamStdin, streamStdout:
			w = stdout
		case streamStderr:
			w = stderr
		case streamSystem:
			w = nil
		default:
			return fmt.Errorf("a frame of unknown stream %d", hdr[0])
		}
		n := int64(binary.BigEndian.Uint32(hdr[4:]))
		for n > 0 {
			k, err := r.Read(buf[:min(int64(len(buf)), n)])
			n -= int64(k)
			if k > 0 {
				if w != nil {
					if _, werr := w.Write(buf[:k]); werr != nil {
						return werr
					}
				} else if room := maxMessage - len(sys); room > 0 {
					sys = append(sys, buf[:min(k, room)]...)
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) && n > 0 {
					err = io.ErrUnexpectedEOF
				}
				if n > 0 {
					return fmt.Errorf("a frame: %w", err)
				}
				break
			}
		}
		if hdr[0] == streamSystem {
			return fmt.Errorf("the engine: %s", sys)
		}
	}
}
