package exec

import (
	"errors"
	"io/fs"
	"strconv"

	"golang.org/x/sys/unix"
)

// Reading /proc without os.File. A stop reads the children file of each
// thread of the agent twice per look (readKids), and fifty stops on a wake
// make dozens of looks while fifty programs exit and start on the same
// cores: os.ReadFile costs six system calls a file (open, an epoll
// registration that /proc refuses, fstat, two reads, close), os.ReadDir as
// many. Here a file is opened once and read from offset 0 for each look
// (a /proc seq file is produced anew on a read at offset 0), which makes
// two reads of a children file four calls instead of twelve and a look
// about three times cheaper.

// readSmall reads the whole of the open /proc file fd from offset 0 into
// *buf, growing it as needed.
func readSmall(fd int, buf *[]byte) ([]byte, error) {
	if len(*buf) == 0 {
		*buf = make([]byte, 512)
	}
	for {
		n, err := preadFull(fd, *buf)
		if err != nil {
			return nil, err
		}
		if n < len(*buf) {
			return (*buf)[:n], nil
		}
		*buf = make([]byte, 2*len(*buf)) // it may not all have fitted: again, from 0
	}
}

// preadFull reads from offset 0 until EOF or b is full.
func preadFull(fd int, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := unix.Pread(fd, b[n:], int64(n))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// openProc opens a /proc file for reading; a missing file is fs.ErrNotExist.
func openProc(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// parsePids parses pids separated by white space (a children file).
func parsePids(b []byte) []int {
	var pids []int
	n, in := 0, false
	for _, c := range b {
		if c >= '0' && c <= '9' {
			n, in = n*10+int(c-'0'), true
			continue
		}
		if in {
			pids = append(pids, n)
		}
		n, in = 0, false
	}
	if in {
		pids = append(pids, n)
	}
	return pids
}

// readPids reads a /proc children file: pids separated by spaces.
func readPids(path string) ([]int, error) {
	fd, err := openProc(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var buf []byte
	b, err := readSmall(fd, &buf)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	return parsePids(b), nil
}

// readPidsTwice reads a /proc children file twice through one open file:
// two separate productions of its content (see readKids for why).
func readPidsTwice(path string, buf *[]byte) (first, second []int, err error) {
	fd, err := openProc(path)
	if err != nil {
		return nil, nil, err
	}
	defer unix.Close(fd)
	b, err := readSmall(fd, buf)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	first = parsePids(b)
	if b, err = readSmall(fd, buf); err != nil {
		return nil, nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	return first, parsePids(b), nil
}

// dirNumbers lists the names of dir that are numbers (pids, thread ids).
func dirNumbers(dir string) ([]int, error) {
	fd, err := openProc(dir)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var (
		out   []int
		names []string
		buf   [4096]byte
	)
	for {
		n, err := unix.Getdents(fd, buf[:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "readdirent", Path: dir, Err: err}
		}
		if n <= 0 {
			return out, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names[:0])
		for _, name := range names {
			if id, err := strconv.Atoi(name); err == nil {
				out = append(out, id)
			}
		}
	}
}
