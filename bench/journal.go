package bench

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
)

// journal is the least a server durable at the 202 must do, for the
// relay's --journal: each accepted event is appended to one file and
// fsynced before its publish is answered, and each attempt's result is
// appended after it. One goroutine owns the file and writes whatever has
// come in since its last fsync with one write and one fsync (a group
// commit), like a write-ahead log with no index and no table behind it.
type journal struct {
	f    *os.File
	in   chan journalWrite
	stop chan struct{} // closed by close
	done chan struct{} // closed when the writer has stopped
	err  error         // the writer's first failure; read after done

	syncs atomic.Int64 // fsyncs done
}

type journalWrite struct {
	b      []byte
	synced chan error // nil: an attempt's result, not waited for
}

// errJournalClosed answers an append after close.
var errJournalClosed = errors.New("relay: journal closed")

// journalBatchBytes bounds one write: a backlog larger than this is
// written and fsynced in turns.
const journalBatchBytes = 4 << 20

// openJournal creates path (it must not exist) and starts its writer.
func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relay: journal: %w", err)
	}
	j := &journal{f: f, in: make(chan journalWrite, 4096), stop: make(chan struct{}), done: make(chan struct{})}
	go j.run()
	return j, nil
}

// append adds b to the journal; with wait it returns once b is on disk.
// b must not change afterwards.
func (j *journal) append(b []byte, wait bool) error {
	var synced chan error
	if wait {
		synced = make(chan error, 1)
	}
	select {
	case j.in <- journalWrite{b, synced}:
	case <-j.stop:
		return errJournalClosed
	}
	if !wait {
		return nil
	}
	select {
	case err := <-synced:
		return err
	case <-j.done:
		select {
		case err := <-synced:
			return err
		default:
			return errJournalClosed
		}
	}
}

func (j *journal) run() {
	defer close(j.done)
	var (
		buf     []byte
		waiting []chan error
	)
	for {
		var w journalWrite
		stopping := false
		select {
		case w = <-j.in:
		case <-j.stop:
			stopping = true
		}
		buf, waiting = buf[:0], waiting[:0]
		if !stopping {
			buf, waiting = w.add(buf, waiting)
		}
	gather: // whatever else has come in, up to a bound
		for len(buf) < journalBatchBytes {
			select {
			case w = <-j.in:
				buf, waiting = w.add(buf, waiting)
			default:
				break gather
			}
		}
		if len(buf) > 0 && j.err == nil {
			j.err = j.flush(buf)
		}
		for _, c := range waiting {
			c <- j.err
		}
		if stopping && len(buf) == 0 {
			return
		}
	}
}

// flush writes buf and fsyncs the file.
func (j *journal) flush(buf []byte) error {
	if _, err := j.f.Write(buf); err != nil {
		return fmt.Errorf("relay: journal: %w", err)
	}
	j.syncs.Add(1)
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("relay: journal: %w", err)
	}
	return nil
}

func (w journalWrite) add(buf []byte, waiting []chan error) ([]byte, []chan error) {
	if w.synced != nil {
		waiting = append(waiting, w.synced)
	}
	return append(buf, w.b...), waiting
}

// close stops taking appends, writes and fsyncs what came in before, and
// closes the file; it returns the first failure to write.
func (j *journal) close() error {
	close(j.stop)
	<-j.done
	if err := j.f.Close(); err != nil && j.err == nil {
		j.err = fmt.Errorf("relay: journal: %w", err)
	}
	return j.err
}
