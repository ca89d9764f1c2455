package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// These tests speak the Engine's wire format from an httptest server: the
// edge cases a real engine does not produce on demand (a stream cut
// mid-event, an endless line, an oversize body, a hostile frame length).
// The proof against real engines is trackers/container's
// TestAgainstARealEngine and TestAgainstPodman, and tests/e2e.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait; never a speed expectation.
const guard = 30 * time.Second

// fake is an Engine API server: it answers /_ping with apiVersion and
// hands every other request to handle, recording the paths asked.
type fake struct {
	t          *testing.T
	apiVersion string
	handle     func(w http.ResponseWriter, r *http.Request)

	mu    sync.Mutex
	paths []string
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.RequestURI())
	f.mu.Unlock()
	if r.URL.Path == "/_ping" {
		if f.apiVersion != "" {
			w.Header().Set("Api-Version", f.apiVersion)
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "OK")
		return
	}
	if f.handle == nil {
		http.NotFound(w, r)
		return
	}
	f.handle(w, r)
}

func (f *fake) asked() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.paths...)
}

// serve starts f on a unix socket (as Docker and Podman listen) and
// returns a client of it.
func serve(t *testing.T, f *fake) *Client {
	t.Helper()
	t.Setenv(EnvAPIVersion, "")
	t.Setenv(EnvCertPath, "")
	f.t = t
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "d.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	c, err := New("unix://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func TestVersionNegotiation(t *testing.T) {
	cases := []struct {
		name, engine, want, wantErr string
	}{
		{"DebiansDocker2010IsSpokenInItsOwnVersion", "1.41", "/v1.41/containers/x/json", ""},
		{"ANewerEngineIsSpokenInTheNewestThisClientKnows", "1.99", "/v" + MaxAPIVersion + "/containers/x/json", ""},
		{"NoVersionHeaderMeansTheNewest", "", "/v" + MaxAPIVersion + "/containers/x/json", ""},
		{"AnEngineOlderThanHealthChecksIsRefused", "1.23", "", "older than 1.24"},
		{"AGarbledVersionIsAnError", "one.two", "", "not an API version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fake{apiVersion: c.engine, handle: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 200, map[string]any{"Id": "abc", "State": map[string]any{"Running": true}})
			}}
			cli := serve(t, f)
			_, err := cli.Inspect(ctxT(t), "x")
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("want an error with %q, got %v", c.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := f.asked()
			if len(got) != 2 || got[0] != "GET /_ping" || got[1] != "GET "+c.want {
				t.Fatalf("asked %q, want a ping then GET %s", got, c.want)
			}
		})
	}
}

func TestAFixedAPIVersionIsNotNegotiated(t *testing.T) {
	f := &fake{apiVersion: "1.41", handle: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }}
	cli := serve(t, f)
	t.Setenv(EnvAPIVersion, "1.44")
	cli, err := New(cli.Host())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if err := cli.Start(ctxT(t), "x"); err != nil {
		t.Fatal(err)
	}
	if got := f.asked(); len(got) != 1 || got[0] != "POST /v1.44/containers/x/start" {
		t.Fatalf("asked %q", got)
	}
}

func TestTheWireFormatOfEachCall(t *testing.T) {
	f := &fake{apiVersion: "1.41", handle: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/json":
			writeJSON(w, 200, []map[string]any{{"Id": "c1", "Names": []string{"/blog-db-1"}}})
		default:
			w.WriteHeader(204)
		}
	}}
	cli := serve(t, f)
	ctx := ctxT(t)
	items, err := cli.List(ctx, true, Filters{"label": {"com.docker.compose.project=blog"}})
	if err != nil || len(items) != 1 || items[0].ID != "c1" {
		t.Fatalf("List = %+v, %v", items, err)
	}
	for _, err := range []error{cli.Start(ctx, "db"), cli.Unpause(ctx, "db"), cli.Restart(ctx, "db", -1), cli.Stop(ctx, "db", 7)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"GET /_ping",
		"GET /v1.41/containers/json?all=1&filters=%7B%22label%22%3A%7B%22com.docker.compose.project%3Dblog%22%3Atrue%7D%7D",
		"POST /v1.41/containers/db/start",
		"POST /v1.41/containers/db/unpause",
		"POST /v1.41/containers/db/restart",
		"POST /v1.41/containers/db/stop?t=7",
	}
	if got := f.asked(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("asked\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestErrors(t *testing.T) {
	f := &fake{apiVersion: "1.41", handle: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/gone/json":
			writeJSON(w, 404, map[string]string{"message": "No such container: gone"})
		case "/v1.41/containers/up/start":
			w.WriteHeader(304) // already started
		case "/v1.41/containers/busy/restart":
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(500)
			io.WriteString(w, "cannot restart: the runtime is wedged\n")
		case "/v1.41/containers/loud/stop":
			w.WriteHeader(409)
			w.Write(bytes.Repeat([]byte("x"), 10<<20))
		}
	}}
	cli := serve(t, f)
	ctx := ctxT(t)

	_, err := cli.Inspect(ctx, "gone")
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || e.Status != 404 ||
		err.Error() != fmt.Sprintf(`inspect container "gone": No such container: gone (HTTP 404 from %s)`, cli.Host()) {
		t.Fatalf("a 404: %v", err)
	}
	if err := cli.Start(ctx, "up"); err != nil {
		t.Fatalf("a 304 on start is success: %v", err)
	}
	err = cli.Restart(ctx, "busy", -1)
	if errors.Is(err, ErrNotFound) || err == nil || !strings.Contains(err.Error(), "the runtime is wedged (HTTP 500") {
		t.Fatalf("a 500 with a text body: %v", err)
	}
	err = cli.Stop(ctx, "loud", -1)
	if err == nil || !strings.Contains(err.Error(), "HTTP 409") || len(err.Error()) > 2*maxMessage {
		t.Fatalf("a 10 MB error body: %d bytes of error: %.200v", len(err.Error()), err)
	}
}

func TestAnEngineThatDoesNotAnswerIsNamed(t *testing.T) {
	t.Setenv(EnvAPIVersion, "")
	sock := filepath.Join(t.TempDir(), "none.sock")
	cli, err := New("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, err = cli.Ping(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "cannot reach the engine at unix://"+sock) {
		t.Fatalf("Ping = %v", err)
	}
}

func TestAddresses(t *testing.T) {
	t.Setenv(EnvCertPath, "")
	t.Setenv(EnvAPIVersion, "")
	for _, c := range []struct{ host, proto, addr, base, err string }{
		{"unix:///var/run/docker.sock", "unix", "/var/run/docker.sock", "", ""},
		{"tcp://127.0.0.1:2375", "tcp", "127.0.0.1:2375", "", ""},
		{"tcp://engine.lan:2376/prefix/", "tcp", "engine.lan:2376", "/prefix", ""},
		{"/var/run/docker.sock", "", "", "", "want unix://"},
		{"tcp://nohostport", "", "", "", "want tcp://host:port"},
		{"ssh://me@box", "", "", "", "unknown scheme"},
	} {
		cli, err := New(c.host)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: want an error with %q, got %v", c.host, c.err, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.host, err)
			continue
		}
		if cli.proto != c.proto || cli.addr != c.addr || cli.base != c.base {
			t.Errorf("%s: got %s %s %q", c.host, cli.proto, cli.addr, cli.base)
		}
	}
	t.Setenv(EnvHost, "tcp://10.0.0.1:2375")
	if cli, err := New(""); err != nil || cli.Host() != "tcp://10.0.0.1:2375" {
		t.Errorf("DOCKER_HOST: %v %v", cli, err)
	}
}

func TestAnOversizeBodyIsAnErrorNotMemory(t *testing.T) {
	f := &fake{apiVersion: "1.41", handle: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"Id":"`)
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for range (maxBody / len(chunk)) + 16 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(w, `"}`)
	}}
	cli := serve(t, f)
	_, err := cli.Inspect(ctxT(t), "big")
	if err == nil || !strings.Contains(err.Error(), "larger than 8 MB") {
		t.Fatalf("Inspect of a 9 MB answer: %v", err)
	}
}

// eventServer streams what send writes after the events' head.
func eventServer(t *testing.T, contentType string, send func(w io.Writer, flush func()) bool) (*Client, *fake) {
	f := &fake{apiVersion: "1.41", handle: func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1.41/events" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(200)
		fl := w.(http.Flusher)
		fl.Flush()
		if !send(w, fl.Flush) {
			<-r.Context().Done() // hold the stream open
		}
	}}
	return serve(t, f), f
}

func TestEvents(t *testing.T) {
	ev1 := `{"status":"start","id":"c1","Type":"container","Action":"start","Actor":{"ID":"c1","Attributes":{"name":"db"}},"time":1,"timeNano":1000000001}`
	ev2 := `{"Type":"container","Action":"health_status: healthy","Actor":{"ID":"c1"},"timeNano":2}`
	old := `{"status":"die","id":"c1","Type":"container","Actor":{"ID":"c1","Attributes":{"exitCode":"137"}}}`

	t.Run("DecodesJSONLinesAndAsksWithTheFilters", func(t *testing.T) {
		cli, f := eventServer(t, "application/json", func(w io.Writer, flush func()) bool {
			io.WriteString(w, ev1+"\n"+ev2+"\n"+old+"\n")
			flush()
			return false
		})
		ev, err := cli.Events(ctxT(t), Filters{"type": {"container"}, "container": {"c1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Close()
		var got []Event
		for range 3 {
			select {
			case e := <-ev.C:
				got = append(got, e)
			case <-time.After(guard):
				t.Fatal("no event")
			}
		}
		if got[0].Action != "start" || got[0].Actor.Attributes["name"] != "db" || got[0].TimeNano != 1000000001 ||
			got[1].Action != "health_status: healthy" || got[2].Action != "die" || got[2].Actor.Attributes["exitCode"] != "137" {
			t.Fatalf("events %+v", got)
		}
		want := "GET /v1.41/events?filters=%7B%22container%22%3A%7B%22c1%22%3Atrue%7D%2C%22type%22%3A%7B%22container%22%3Atrue%7D%7D"
		if a := f.asked(); a[len(a)-1] != want {
			t.Fatalf("asked %q, want %q", a[len(a)-1], want)
		}
	})

	t.Run("DecodesJSONSequences", func(t *testing.T) {
		cli, _ := eventServer(t, "application/json-seq", func(w io.Writer, flush func()) bool {
			io.WriteString(w, "\x1e"+ev1+"\n\x1e"+ev2+"\n")
			flush()
			return false
		})
		ev, err := cli.Events(ctxT(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Close()
		for _, want := range []string{"start", "health_status: healthy"} {
			if e, ok := <-ev.C; !ok || e.Action != want {
				t.Fatalf("got %+v, want %s", e, want)
			}
		}
	})

	t.Run("AStreamCutMidEventEndsWithThatError", func(t *testing.T) {
		cli, _ := eventServer(t, "application/json", func(w io.Writer, flush func()) bool {
			io.WriteString(w, ev1+"\n"+ev2[:30])
			return true
		})
		ev, err := cli.Events(ctxT(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Close()
		if e := <-ev.C; e.Action != "start" {
			t.Fatalf("first event %+v", e)
		}
		if e, ok := <-ev.C; ok {
			t.Fatalf("a half event was delivered: %+v", e)
		}
		if err := ev.Err(); err == nil || !strings.Contains(err.Error(), "ended in the middle of an event") {
			t.Fatalf("Err = %v", err)
		}
	})

	t.Run("AStreamThatEndsCleanlySaysSo", func(t *testing.T) {
		cli, _ := eventServer(t, "application/json", func(w io.Writer, flush func()) bool { return true })
		ev, err := cli.Events(ctxT(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Close()
		if _, ok := <-ev.C; ok {
			t.Fatal("an event from an empty stream")
		}
		if err := ev.Err(); err == nil || !strings.Contains(err.Error(), "event stream of unix://") || !strings.HasSuffix(err.Error(), " ended") {
			t.Fatalf("Err = %v", err)
		}
	})

	t.Run("AnEndlessEventIsCutAtItsLimit", func(t *testing.T) {
		cli, _ := eventServer(t, "application/json", func(w io.Writer, flush func()) bool {
			io.WriteString(w, ev1+"\n"+`{"Type":"container","Action":"`)
			chunk := bytes.Repeat([]byte("z"), 32<<10)
			for { // until the client hangs up
				if _, err := w.Write(chunk); err != nil {
					return true
				}
			}
		})
		ev, err := cli.Events(ctxT(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ev.Close()
		<-ev.C
		if _, ok := <-ev.C; ok {
			t.Fatal("an endless event was delivered")
		}
		if err := ev.Err(); err == nil || !strings.Contains(err.Error(), "larger than 256 KB") {
			t.Fatalf("Err = %v", err)
		}
	})

	t.Run("CloseStopsAQuietStream", func(t *testing.T) {
		cli, _ := eventServer(t, "application/json", func(w io.Writer, flush func()) bool { return false })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ev, err := cli.Events(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev.Close()
		if _, ok := <-ev.C; ok {
			t.Fatal("an event after Close")
		}
		if !errors.Is(ev.Err(), context.Canceled) {
			t.Fatalf("Err = %v", ev.Err())
		}
		// goleak (TestMain) checks the goroutine is gone.
	})

	t.Run("ARefusedSubscriptionIsAnError", func(t *testing.T) {
		f := &fake{apiVersion: "1.41", handle: func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 400, map[string]string{"message": `invalid filter 'nonsense'`})
		}}
		cli := serve(t, f)
		if _, err := cli.Events(ctxT(t), Filters{"nonsense": {"x"}}); err == nil || !strings.Contains(err.Error(), "invalid filter") {
			t.Fatalf("Events = %v", err)
		}
	})
}

// frame is one frame of the multiplexed stream.
func frame(stream byte, p string) []byte {
	h := make([]byte, 8, 8+len(p))
	h[0] = stream
	binary.BigEndian.PutUint32(h[4:], uint32(len(p)))
	return append(h, p...)
}

func TestDemux(t *testing.T) {
	var stream []byte
	stream = append(stream, frame(1, "hello ")...)
	stream = append(stream, frame(2, "warning\n")...)
	stream = append(stream, frame(1, strings.Repeat("x", 100<<10))...) // larger than the buffer
	stream = append(stream, frame(0, "in")...)
	var out, errb bytes.Buffer
	if err := demux(bytes.NewReader(stream), &out, &errb); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello "+strings.Repeat("x", 100<<10)+"in" || errb.String() != "warning\n" {
		t.Fatalf("stdout %d bytes, stderr %q", out.Len(), errb.String())
	}

	for _, c := range []struct {
		name, want string
		stream     []byte
	}{
		{"AnEngineErrorFrame", "the engine: exec failed: no such file", append(frame(1, "x"), frame(3, "exec failed: no such file")...)},
		{"AnUnknownStream", "unknown stream 7", frame(7, "x")},
		{"AHeaderCut", "a frame header: unexpected EOF", frame(1, "x")[:5]},
		// 4 GB announced, 3 bytes sent: an error, and no 4 GB buffer.
		{"AHugeLengthThenTheEnd", "a frame: unexpected EOF", append([]byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, "abc"...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := demux(bytes.NewReader(c.stream), &out, &out)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("demux = %v, want %q", err, c.want)
			}
		})
	}

	t.Run("AHugeFrameIsStreamedNotHeld", func(t *testing.T) {
		const n = 64 << 20
		r := io.MultiReader(bytes.NewReader([]byte{2, 0, 0, 0, 0x04, 0, 0, 0}), io.LimitReader(zeros{}, n))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := demux(r, io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 1<<20 {
			t.Fatalf("%d bytes allocated to demux one 64 MB frame", d)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// execServer is an engine that runs one exec: create, a hijacked start
// answering with head and then stream, and an inspect reporting running
// for the first runningFor asks.
func execServer(t *testing.T, head string, stream []byte, exitCode, runningFor int) (*Client, *fake) {
	var mu sync.Mutex
	asks := 0
	f := &fake{apiVersion: "1.41"}
	f.handle = func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1.41/containers/db/exec":
			var in struct {
				Cmd                        []string
				AttachStdout, AttachStderr bool
			}
			json.NewDecoder(r.Body).Decode(&in)
			if !in.AttachStdout || !in.AttachStderr || strings.Join(in.Cmd, " ") != "mysqladmin ping" {
				writeJSON(w, 400, map[string]string{"message": fmt.Sprintf("bad exec %+v", in)})
				return
			}
			writeJSON(w, 201, map[string]string{"Id": "e1"})
		case "/v1.41/exec/e1/start":
			if r.Header.Get("Upgrade") != "tcp" || r.Header.Get("Connection") != "Upgrade" {
				writeJSON(w, 400, map[string]string{"message": "no upgrade asked"})
				return
			}
			conn, brw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			brw.WriteString(head)
			brw.Write(stream)
			brw.Flush()
		case "/v1.41/exec/e1/json":
			mu.Lock()
			asks++
			running := asks <= runningFor
			mu.Unlock()
			if running {
				writeJSON(w, 200, map[string]any{"Running": true, "ExitCode": nil})
				return
			}
			writeJSON(w, 200, map[string]any{"Running": false, "ExitCode": exitCode})
		default:
			http.NotFound(w, r)
		}
	}
	return serve(t, f), f
}

const upgraded = "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"

func TestExec(t *testing.T) {
	argv := []string{"mysqladmin", "ping"}
	t.Run("ItsOutputAndExitCode", func(t *testing.T) {
		stream := append(frame(1, "connecting\n"), frame(2, "error: access denied\n")...)
		cli, _ := execServer(t, upgraded, stream, 1, 2)
		var out, errb bytes.Buffer
		code, err := cli.Exec(ctxT(t), "db", argv, &out, &errb)
		if err != nil || code != 1 || out.String() != "connecting\n" || errb.String() != "error: access denied\n" {
			t.Fatalf("Exec = %d, %v; stdout %q stderr %q", code, err, out.String(), errb.String())
		}
	})

	t.Run("AnEngineThatAnswers200WithoutUpgrading", func(t *testing.T) {
		head := "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n"
		cli, _ := execServer(t, head, frame(1, "mysqld is alive\n"), 0, 0)
		var out bytes.Buffer
		code, err := cli.Exec(ctxT(t), "db", argv, &out, &out)
		if err != nil || code != 0 || out.String() != "mysqld is alive\n" {
			t.Fatalf("Exec = %d, %v; output %q", code, err, out.String())
		}
	})

	t.Run("AStoppedContainerIsTheEnginesMessage", func(t *testing.T) {
		head := "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 45\r\n\r\n" + `{"message":"Container db is not running"}` + "    "
		cli, _ := execServer(t, head, nil, 0, 0)
		_, err := cli.Exec(ctxT(t), "db", argv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `exec "mysqladmin" in container "db": Container db is not running (HTTP 409`) {
			t.Fatalf("Exec = %v", err)
		}
	})

	t.Run("AnEndlessHeadIsCut", func(t *testing.T) {
		head := "HTTP/1.1 101 UPGRADED\r\nX-Junk: " + strings.Repeat("j", 2*maxHead)
		cli, _ := execServer(t, head, nil, 0, 0)
		_, err := cli.Exec(ctxT(t), "db", argv, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "head from") {
			t.Fatalf("Exec = %v", err)
		}
	})

	t.Run("AHungCommandEndsWithCtx", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		f := &fake{apiVersion: "1.41", handle: func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v1.41/containers/db/exec":
				writeJSON(w, 201, map[string]string{"Id": "e1"})
			case "/v1.41/exec/e1/start":
				conn, brw, _ := w.(http.Hijacker).Hijack()
				defer conn.Close()
				brw.WriteString(upgraded)
				brw.Write(frame(1, "still thinking"))
				brw.Flush()
				<-release
			}
		}}
		cli := serve(t, f)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err := cli.Exec(ctx, "db", argv, io.Discard, io.Discard)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Exec = %v", err)
		}
	})
}
