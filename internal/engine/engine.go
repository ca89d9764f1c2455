// Package engine is rouse's client of the Docker Engine API (and of
// Podman's Docker-compatible API): the dozen calls the container tracker
// makes — ping with API version negotiation, container inspect, list,
// start, unpause, restart and stop, the event stream, and exec with its
// hijacked, multiplexed output — and nothing else.
//
// It is hand-written on purpose. The official client
// (github.com/moby/moby/client) cost every user of rouse, containers or
// not, 1.66 MB of binary (22,327,561 bytes stripped against 20,668,681
// without the container kind; it brings opentelemetry,
// distribution/reference, go-digest, image-spec, errdefs and
// go-connections) and about 0.5 MB of allocations at package init
// (distribution/reference compiles 414 KB of regular expressions, go-digest
// 92 KB). The binary's pages are most of the agent's resident memory (18.8
// of 27.2 MB with 50 components), so a smaller binary is less memory for
// everyone. The wire format follows the Engine's own swagger.yaml and the
// official client: paths carry the negotiated /v1.NN prefix, filters are a
// JSON object in the query, errors are {"message": …} bodies, 304 from
// start or stop means "already so", exec output is a hijacked connection
// (Upgrade: tcp) carrying 8-byte-header frames.
//
// Nothing an engine sends can crash the agent or grow its memory without
// bound: every body read is limited (a JSON answer to maxBody, an error
// message to maxErrorBody, one event to maxEvent, the response head of a
// hijack to maxHead), and exec output is streamed through a fixed buffer
// into the caller's writers, never held as a frame. Errors name the call,
// the engine's address, the HTTP status and the engine's message.
package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// API versions. The client speaks the engine's version, capped at
// MaxAPIVersion (the newest swagger.yaml its wire format was checked
// against); engines older than MinAPIVersion (Docker 1.12, 2016) lack
// health checks and are refused with a message.
const (
	MaxAPIVersion = "1.56"
	MinAPIVersion = "1.24"
)

// Limits on what is read from an engine.
const (
	maxBody      = 8 << 20  // one JSON answer (inspect, list, exec inspect)
	maxErrorBody = 64 << 10 // an error answer; its message is cut to maxMessage
	maxMessage   = 1 << 10
	maxEvent     = 256 << 10 // one event of the stream
	maxHead      = 64 << 10  // the status line and headers of a hijacked answer
)

// Environment variables read by New, as the docker CLI reads them.
const (
	EnvHost       = "DOCKER_HOST"
	EnvAPIVersion = "DOCKER_API_VERSION"
	EnvCertPath   = "DOCKER_CERT_PATH"
	EnvTLSVerify  = "DOCKER_TLS_VERIFY"
)

// dummyHost is the Host header on a unix socket or named pipe, as the
// official client sends it.
const dummyHost = "api.moby.localhost"

// ErrNotFound matches (errors.Is) an engine's 404: no such container or
// exec instance.
var ErrNotFound = errors.New("not found")

// Error is an engine's answer that is not a success.
type Error struct {
	Op      string // what was asked, e.g. `inspect container "db"`
	Host    string // the engine's address
	Status  int    // the HTTP status
	Message string // the engine's message, cut to 1 KB
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no message"
	}
	return fmt.Sprintf("%s: %s (HTTP %d from %s)", e.Op, msg, e.Status, e.Host)
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Client talks to one engine. It is safe for concurrent use; Close
// releases its idle connections.
type Client struct {
	host  string // as given, for messages
	proto string // unix, npipe or tcp
	addr  string // the socket path, pipe name or host:port
	base  string // a path prefix of a tcp:// address
	tls   *tls.Config
	tr    *http.Transport
	hc    *http.Client

	mu      sync.Mutex
	version string // the API version in use; "" until the first Ping
	fixed   bool   // DOCKER_API_VERSION set it: no negotiation
}

// DefaultHost is the platform's standard engine address.
const DefaultHost = defaultHost

// New returns a client of the engine at host (unix:///path,
// tcp://host:port, npipe://name, http:// or https://). An empty host means
// DOCKER_HOST, then DefaultHost. DOCKER_API_VERSION fixes the API version;
// DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) turns on TLS for a tcp
// address, verifying the engine's certificate when DOCKER_TLS_VERIFY is
// set, as the docker CLI does. New does not talk to the engine.
func New(host string) (*Client, error) {
	if host == "" {
		host = os.Getenv(EnvHost)
	}
	if host == "" {
		host = DefaultHost
	}
	c := &Client{host: host}
	proto, addr, ok := strings.Cut(host, "://")
	if !ok || addr == "" {
		return nil, fmt.Errorf("engine address %q: want unix:///path/to/docker.sock, tcp://host:port or npipe://", host)
	}
	switch proto {
	case "unix", "npipe":
		c.proto, c.addr = proto, addr
	case "tcp", "http", "https":
		u, err := url.Parse("tcp://" + addr)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("engine address %q: want tcp://host:port", host)
		}
		c.proto, c.addr, c.base = "tcp", u.Host, strings.TrimSuffix(u.Path, "/")
		if _, _, err := net.SplitHostPort(c.addr); err != nil {
			return nil, fmt.Errorf("engine address %q: want tcp://host:port: %v", host, err)
		}
	default:
		return nil, fmt.Errorf("engine address %q: unknown scheme %q: want unix://, tcp:// or npipe://", host, proto)
	}
	if proto == "https" {
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if dir := os.Getenv(EnvCertPath); dir != "" && c.proto == "tcp" {
		cfg, err := tlsFromDir(dir, os.Getenv(EnvTLSVerify) != "")
		if err != nil {
			return nil, fmt.Errorf("engine TLS from %s=%s: %w", EnvCertPath, dir, err)
		}
		c.tls = cfg
	}
	if v := os.Getenv(EnvAPIVersion); v != "" {
		pv, err := parseVersion(strings.TrimPrefix(v, "v"))
		if err != nil {
			return nil, fmt.Errorf("%s=%q: %w", EnvAPIVersion, v, err)
		}
		c.version, c.fixed = pv.String(), true
	}
	c.tr = &http.Transport{
		DialContext:            func(ctx context.Context, _, _ string) (net.Conn, error) { return c.dialRaw(ctx) },
		MaxIdleConns:           4,
		IdleConnTimeout:        30 * time.Second,
		ResponseHeaderTimeout:  0, // the event stream waits; calls carry their own deadline
		MaxResponseHeaderBytes: maxHead,
		TLSClientConfig:        c.tls,
		DisableCompression:     true,
	}
	if c.proto == "tcp" {
		c.tr.Proxy = http.ProxyFromEnvironment
	}
	c.hc = &http.Client{
		Transport:     c.tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c, nil
}

// tlsFromDir loads ca.pem, cert.pem and key.pem as the docker CLI does.
func tlsFromDir(dir string, verify bool) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: !verify} //nolint:gosec // as the docker CLI: verification only with DOCKER_TLS_VERIFY
	if verify {
		ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			return nil, err
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("%s holds no PEM certificate", filepath.Join(dir, "ca.pem"))
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// Host is the engine's address as given (or found in DOCKER_HOST).
func (c *Client) Host() string { return c.host }

// Close releases the client's idle connections. A running event stream or
// exec keeps its own connection until it ends.
func (c *Client) Close() { c.tr.CloseIdleConnections() }

// dialRaw opens a connection to the engine, with TLS when configured.
func (c *Client) dialRaw(ctx context.Context) (net.Conn, error) {
	var conn net.Conn
	var err error
	switch c.proto {
	case "npipe":
		conn, err = dialPipe(ctx, c.addr)
	default:
		var d net.Dialer
		conn, err = d.DialContext(ctx, c.proto, c.addr)
	}
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// dial is dialRaw plus the TLS handshake, for a hijacked connection (the
// transport does its own handshake).
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	conn, err := c.dialRaw(ctx)
	if err != nil || c.tls == nil {
		return conn, err
	}
	cfg := c.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(c.addr)
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// Version is the API version in use, "" before the first Ping.
func (c *Client) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// Ping asks the engine whether it answers (GET /_ping) and negotiates the
// API version: the engine's own (its Api-Version header), capped at
// MaxAPIVersion. It returns the version in use. Every Ping negotiates
// again, so an engine upgraded while rouse runs is spoken to in its new
// version.
func (c *Client) Ping(ctx context.Context) (string, error) {
	req, err := c.request(ctx, http.MethodGet, c.base+"/_ping", nil, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return "", c.connError("ping", err)
	}
	defer drain(resp)
	if err := c.check("ping", resp); err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fixed {
		return c.version, nil
	}
	v := resp.Header.Get("Api-Version")
	if v == "" {
		// No version: an engine from before negotiation, or a proxy;
		// speak the newest, as the official client does.
		c.version = MaxAPIVersion
		return c.version, nil
	}
	sv, err := parseVersion(v)
	if err != nil {
		return "", fmt.Errorf("ping %s: its Api-Version %q: %w", c.host, v, err)
	}
	if sv.less(mustVersion(MinAPIVersion)) {
		return "", fmt.Errorf("ping %s: its API version %s is older than %s, the oldest rouse speaks (Docker 1.12): upgrade the engine", c.host, v, MinAPIVersion)
	}
	if mx := mustVersion(MaxAPIVersion); mx.less(sv) {
		sv = mx
	}
	c.version = sv.String()
	return c.version, nil
}

// apiVersion is the version to put in a path, negotiating first when no
// Ping has yet.
func (c *Client) apiVersion(ctx context.Context) (string, error) {
	c.mu.Lock()
	v := c.version
	c.mu.Unlock()
	if v != "" {
		return v, nil
	}
	return c.Ping(ctx)
}

// request builds a request to the engine; path is absolute, e.g.
// /v1.41/containers/x/json.
func (c *Client) request(ctx context.Context, method, path string, query url.Values, body []byte) (*http.Request, error) {
	scheme := "http"
	if c.tls != nil {
		scheme = "https"
	}
	host := c.addr
	if c.proto != "tcp" {
		host = dummyHost
	}
	u := &url.URL{Scheme: scheme, Host: host, Path: path, RawQuery: query.Encode()}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "rouse")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// do sends one API call (the path without the version prefix, e.g.
// /containers/x/json) and returns the successful response; the caller
// closes its body with drain. op names the call for messages.
func (c *Client) do(ctx context.Context, op, method, path string, query url.Values, in any) (*http.Response, error) {
	v, err := c.apiVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	req, err := c.request(ctx, method, c.base+"/v"+v+path, query, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, c.connError(op, err)
	}
	if err := c.check(op, resp); err != nil {
		drain(resp)
		return nil, err
	}
	return resp, nil
}

// call is do for a call whose answer is JSON (into out) or nothing
// (out == nil).
func (c *Client) call(ctx context.Context, op, method, path string, query url.Values, in, out any) error {
	resp, err := c.do(ctx, op, method, path, query, in)
	if err != nil {
		return err
	}
	defer drain(resp)
	if out == nil {
		return nil
	}
	lr := &limitReader{r: resp.Body, n: maxBody}
	if err := json.NewDecoder(lr).Decode(out); err != nil {
		if lr.over {
			return fmt.Errorf("%s: the answer of %s is larger than %d MB", op, c.host, maxBody>>20)
		}
		return fmt.Errorf("%s: reading the answer of %s: %w", op, c.host, err)
	}
	return nil
}

// check turns an answer that is not a success into an *Error. Success is
// 2xx, and 304 (start of a running or stop of a stopped container).
func (c *Client) check(op string, resp *http.Response) error {
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
		return nil
	}
	return &Error{Op: op, Host: c.host, Status: resp.StatusCode, Message: errorMessage(resp)}
}

// errorMessage reads an error answer's message: {"message": …} as the
// Engine sends it, else the body's text; bounded.
func errorMessage(resp *http.Response) string {
	if resp.Body == nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	b = bytes.TrimSpace(b)
	var e struct {
		Message string `json:"message"`
	}
	msg := string(b)
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		msg = e.Message
	}
	msg = strings.TrimSpace(msg)
	if len(msg) > maxMessage {
		msg = msg[:maxMessage] + "…"
	}
	return msg
}

// connError describes a call that got no answer.
func (c *Client) connError(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: no answer from %s: %w", op, c.host, err)
	}
	return fmt.Errorf("%s: cannot reach the engine at %s: %w", op, c.host, err)
}

// drain reads a little of what is left of a body (so its connection can
// be reused) and closes it.
func drain(resp *http.Response) {
	if resp == nil || resp.Body == nil {
		return
	}
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	resp.Body.Close()
}

// limitReader reads at most n bytes; past that it fails with errTooLarge
// and says so in over.
type limitReader struct {
	r    io.Reader
	n    int64
	over bool
}

var errTooLarge = errors.New("too large")

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// One more byte tells a body of exactly n from a longer one.
		var one [1]byte
		if k, _ := l.r.Read(one[:]); k > 0 {
			l.over = true
			return 0, errTooLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

// version is an API version, major.minor.
type version struct{ major, minor int }

func parseVersion(s string) (version, error) {
	maj, mnr, ok := strings.Cut(strings.TrimSpace(s), ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(mnr)
	if !ok || err1 != nil || err2 != nil || a < 0 || b < 0 {
		return version{}, fmt.Errorf("%q is not an API version (major.minor)", s)
	}
	return version{a, b}, nil
}

func mustVersion(s string) version {
	v, err := parseVersion(s)
	if err != nil {
		panic(err)
	}
	return v
}

func (v version) less(w version) bool {
	return v.major < w.major || v.major == w.major && v.minor < w.minor
}

func (v version) String() string { return strconv.Itoa(v.major) + "." + strconv.Itoa(v.minor) }
