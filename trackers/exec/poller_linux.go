package exec

import (
	"bytes"
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// poller reads the output pipes of every exec child in one goroutine: an
// epoll set of the pipes, itself waited on through Go's netpoller (an epoll
// fd is readable while one of its fds is), so the goroutine parks like any
// reader and holds no thread. It runs while anyone holds it
// (acquire/release: every running exec process); the last release stops it
// and waits for it. A child's pipes cost no goroutine of their own.
type poller struct {
	mu    sync.Mutex
	refs  int
	ep    *os.File // the epoll fd, for the netpoller
	pipes map[int32]*pipeReader
	done  chan struct{}
	buf   []byte // the goroutine's read buffer, shared by every pipe
}

var thePoller poller

// readChunk bounds what one pipe may read in one round, so a chatty child
// cannot hold up the others (epoll is level-triggered: the rest comes next
// round).
const readChunk = 64 << 10

// pipeReader is one pipe fed to a sink line by line.
type pipeReader struct {
	f      *os.File
	fd     int
	stream string
	sink   *sink
	line   []byte // the line read so far, at most maxLineBytes
	done   chan struct{}
	once   sync.Once
}

func (r *pipeReader) Done() <-chan struct{} { return r.done }

// Close stops reading (whatever is still unread is dropped) and closes the
// pipe. It is safe to call more than once and after EOF.
func (r *pipeReader) Close() {
	thePoller.mu.Lock()
	thePoller.drop(r)
	thePoller.mu.Unlock()
	r.f.Close()
}

// readOutput feeds f to s line by line until EOF or Close; nil when the
// poller cannot take it (the caller reads it itself).
func readOutput(f *os.File, stream string, s *sink) outputReader {
	r := &pipeReader{f: f, stream: stream, sink: s, done: make(chan struct{})}
	p := &thePoller
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ep == nil {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	// The fd stays open until Close: f is kept alive by r. Reads must not
	// block the poller.
	var nbErr error
	if err := rc.Control(func(fd uintptr) { r.fd = int(fd); nbErr = unix.SetNonblock(r.fd, true) }); err != nil || nbErr != nil {
		return nil
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(r.fd)}
	if err := unix.EpollCtl(int(p.ep.Fd()), unix.EPOLL_CTL_ADD, r.fd, &ev); err != nil {
		return nil
	}
	p.pipes[int32(r.fd)] = r
	return r
}

func holdPoller() bool { return thePoller.acquire() }
func releasePoller()   { thePoller.release() }

// acquire starts the goroutine when the first holder comes; false when
// epoll is not available (each pipe then gets a goroutine of its own).
func (p *poller) acquire() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refs > 0 {
		p.refs++
		return true
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return false
	}
	p.refs = 1
	p.ep = os.NewFile(uintptr(epfd), "epoll")
	p.pipes = map[int32]*pipeReader{}
	if p.buf == nil {
		p.buf = make([]byte, readChunk)
	}
	p.done = make(chan struct{})
	go p.run(p.ep, p.done)
	return true
}

func (p *poller) release() {
	p.mu.Lock()
	p.refs--
	if p.refs > 0 {
		p.mu.Unlock()
		return
	}
	ep, done := p.ep, p.done
	p.ep = nil
	for _, r := range p.pipes {
		p.drop(r)
	}
	p.mu.Unlock()
	ep.Close() // ends the goroutine's wait
	<-done
}

func (p *poller) run(ep *os.File, done chan struct{}) {
	defer close(done)
	rc, err := ep.SyscallConn()
	if err != nil {
		return
	}
	events := make([]unix.EpollEvent, 64)
	for {
		err := rc.Read(func(fd uintptr) bool {
			n, err := unix.EpollWait(int(fd), events, 0)
			if n <= 0 || err != nil {
				return false // nothing ready: park until the epoll fd is readable
			}
			p.mu.Lock()
			for _, ev := range events[:n] {
				if r := p.pipes[ev.Fd]; r != nil {
					p.readPipe(r)
				}
			}
			p.mu.Unlock()
			return true
		})
		if err != nil { // closed by release
			return
		}
	}
}

// readPipe reads what r has ready (up to readChunk), with p.mu held. It
// returns true when it read something.
func (p *poller) readPipe(r *pipeReader) bool {
	n, err := unix.Read(r.fd, p.buf)
	if n > 0 {
		r.feed(p.buf[:n])
	}
	switch {
	case n == 0 && err == nil: // EOF: every writer closed it
		r.flush()
		p.drop(r)
	case err != nil && !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR):
		r.sink.log.Debug("child output read ended", "stream", r.stream, "err", err)
		r.flush()
		p.drop(r)
	}
	return n > 0
}

// drain reads what is left in r's pipe now, in the caller's goroutine,
// until its end or until nothing is ready (a writer is still open: the
// poller goes on with it), at most 1 MiB. A stop calls it once the child's processes are
// gone, rather than wait for the poller's goroutine to be scheduled: on a
// wake that restarts fifty children at once, that wait took up to 85 ms.
func (r *pipeReader) drain() {
	p := &thePoller
	p.mu.Lock()
	defer p.mu.Unlock()
	for range 16 { // bounded: a writer that escaped may still be writing
		if p.pipes[int32(r.fd)] != r || !p.readPipe(r) {
			return
		}
	}
}

// drop takes r out of the set, with p.mu held; r's fd is closed by Close.
func (p *poller) drop(r *pipeReader) {
	r.once.Do(func() {
		if p.pipes[int32(r.fd)] == r {
			delete(p.pipes, int32(r.fd))
			if p.ep != nil {
				unix.EpollCtl(int(p.ep.Fd()), unix.EPOLL_CTL_DEL, r.fd, nil)
			}
		}
		close(r.done)
	})
}

// feed splits b into lines (as readLines does: \n or \r\n ends a line, a
// longer line is cut at maxLineBytes).
func (r *pipeReader) feed(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		chunk := b
		if i >= 0 {
			chunk = b[:i]
		}
		if room := maxLineBytes - len(r.line); room > 0 {
			r.line = append(r.line, chunk[:min(room, len(chunk))]...)
		}
		if i < 0 {
			return
		}
		r.emit()
		b = b[i+1:]
	}
}

func (r *pipeReader) emit() {
	line := bytes.TrimSuffix(r.line, []byte{'\r'})
	r.sink.line(r.stream, string(line))
	r.line = r.line[:0]
}

// flush emits a last line that had no newline.
func (r *pipeReader) flush() {
	if len(r.line) > 0 {
		r.emit()
	}
}
