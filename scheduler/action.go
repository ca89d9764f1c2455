package scheduler

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"
)

// killGrace is how long a command has between SIGTERM (at its timeout) and
// SIGKILL of its whole process group.
const killGrace = 3 * time.Second

// envAllowlist is what a command inherits from the agent's environment.
var envAllowlist = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ"}

// outcome is how one run ended.
type outcome struct {
	Result   string
	ExitCode *int
	Output   string
	Err      string
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.ToValidUTF8(string(t.buf), "\uFFFD")
}

// execute runs j's action once under ctx (the scheduler's context) and
// j.Timeout.
func execute(ctx context.Context, j Job) outcome {
	runCtx := ctx
	if j.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, j.Timeout)
		defer cancel()
	}
	var o outcome
	switch {
	case len(j.Command) > 0:
		o = runCommand(runCtx, j)
	case j.HTTP != nil:
		o = runHTTP(runCtx, j.HTTP)
	case j.Func != nil:
		o = runFunc(runCtx, j.Func)
	default:
		o = outcome{Result: ResultFailed, Err: "job has no action"}
	}
	if o.Result != ResultOK && ctx.Err() == nil && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
		o.Result = ResultTimeout
		o.Err = fmt.Sprintf("timed out after %s", j.Timeout)
	} else if o.Result != ResultOK && ctx.Err() != nil {
		o.Err = "cancelled: the scheduler stopped"
	}
	return o
}

// commandEnv builds a command's environment: the allowlist, then env.
func commandEnv(env map[string]string) []string {
	var out []string
	for _, k := range envAllowlist {
		if _, set := env[k]; set {
			continue
		}
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

func runCommand(ctx context.Context, j Job) outcome {
	out := &tail{max: OutputTail}
	cmd := exec.CommandContext(ctx, j.Command[0], j.Command[1:]...)
	cmd.Env = commandEnv(j.Env)
	cmd.Dir = j.Dir
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	setProcessGroup(cmd)
	cmd.WaitDelay = killGrace
	if err := cmd.Start(); err != nil {
		return outcome{Result: ResultFailed, Err: "start: " + err.Error()}
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		// Whatever the leader did, nothing of the group outlives a
		// cancelled run.
		killGroup(cmd)
	}
	o := outcome{Output: out.String(), Result: ResultOK}
	if cmd.ProcessState != nil {
		code := exitCode(cmd.ProcessState)
		o.ExitCode = &code
	}
	if err != nil {
		o.Result = ResultFailed
		o.Err = err.Error()
	}
	return o
}

func runHTTP(ctx context.Context, a *HTTPAction) outcome {
	req, err := http.NewRequestWithContext(ctx, a.Method, a.URL, nil)
	if err != nil {
		return outcome{Result: ResultFailed, Err: err.Error()}
	}
	req.Header.Set("User-Agent", "rouse-scheduler")
	for k, v := range a.Headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return outcome{Result: ResultFailed, Err: err.Error()}
	}
	defer resp.Body.Close()
	body := &tail{max: OutputTail}
	_, rerr := io.Copy(body, io.LimitReader(resp.Body, 16<<20))
	o := outcome{Result: ResultOK, Output: body.String()}
	code := resp.StatusCode
	o.ExitCode = nil
	ok := code >= 200 && code <= 299
	if a.ExpectStatus != 0 {
		ok = code == a.ExpectStatus
	}
	switch {
	case !ok && a.ExpectStatus != 0:
		o.Result, o.Err = ResultFailed, fmt.Sprintf("status %d, want %d", code, a.ExpectStatus)
	case !ok:
		o.Result, o.Err = ResultFailed, fmt.Sprintf("status %d, want 2xx", code)
	case rerr != nil:
		o.Result, o.Err = ResultFailed, "read body: "+rerr.Error()
	}
	return o
}

func runFunc(ctx context.Context, f func(context.Context) (string, error)) (o outcome) {
	defer func() {
		if r := recover(); r != nil {
			o = outcome{Result: ResultFailed, Err: fmt.Sprintf("panic: %v", r)}
		}
	}()
	text, err := f(ctx)
	t := &tail{max: OutputTail}
	_, _ = t.Write([]byte(text))
	o = outcome{Result: ResultOK, Output: t.String()}
	if err != nil {
		o.Result, o.Err = ResultFailed, err.Error()
	}
	return o
}
