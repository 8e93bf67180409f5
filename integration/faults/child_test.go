//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stratalog/strata/proto"
	"github.com/stratalog/strata/remover"
	"github.com/stratalog/strata/rsm/s3"
	"github.com/stratalog/strata/tier"
)

// envChild makes the test binary run as a Strata process the suite can SIGKILL: a broker's
// copy task or its partition remover, in a process of its own. Its value is a childSpec.
const envChild = "STRATA_FAULTS_CHILD"

type childSpec struct {
	Role     string                 `json:"role"` // "copy" or "remove"
	TP       proto.TopicIDPartition `json:"tp"`   // copy: the partition tiered; remove: the partition deleted
	Segments int                    `json:"segments"`
	CacheDir string                 `json:"cacheDir"`
	Calls    string                 `json:"calls"` // the file the calls are recorded in
	Prefix   string                 `json:"prefix"`
	Endpoint string                 `json:"endpoint"`
	Files    string                 `json:"files"` // directory for the segment's files
}

// child is a running child process.
type child struct {
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan error
}

// startChild starts the test binary as a Strata process doing spec.
func startChild(t testing.TB, spec childSpec) *child {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{done: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), envChild+"="+string(b))
	c.cmd.Stderr = &c.stderr
	// The child dies with the suite, even when the suite is killed.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start a %s process: %v", spec.Role, err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
		c.done <- nil
	})
	return c
}

// kill SIGKILLs the child and waits for it.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	err := <-c.done
	c.done <- err
}

// wait waits for the child to exit by itself, within timeout.
func (c *child) wait(timeout time.Duration) error {
	select {
	case err := <-c.done:
		c.done <- err
		if err != nil {
			return fmt.Errorf("%v; its stderr:\n%s", err, c.stderr.String())
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("still running after %v; its stderr:\n%s", timeout, c.stderr.String())
	}
}

// runChild is the child's main.
func runChild(raw string) int {
	var spec childSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", envChild, err)
		return 2
	}
	if err := childMain(spec); err != nil {
		fmt.Fprintf(os.Stderr, "%s process: %v\n", spec.Role, err)
		return 1
	}
	return 0
}

func childMain(spec childSpec) error {
	e, err := loadEnv()
	if err != nil {
		return err
	}
	log, err := zap.NewDevelopment(zap.IncreaseLevel(zap.WarnLevel))
	if err != nil {
		return err
	}
	s := &suite{env: e, prefix: spec.Prefix, log: log}
	f, err := os.OpenFile(spec.Calls, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	rec := &recorder{out: json.NewEncoder(f)}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m, err := newManagerCtx(ctx, s, spec.CacheDir, "faults-"+spec.Role)
	if err != nil {
		return err
	}
	defer m.Close()
	st, err := s3.New(ctx, s.storeConfig(spec.Endpoint), s3.WithLogger(log))
	if err != nil {
		return err
	}
	defer st.Close()
	meta := recMeta{Manager: m, rec: rec, consumeWait: consumeWait}

	switch spec.Role {
	case "copy":
		if err := m.AssignPartitions(ctx, []proto.TopicIDPartition{spec.TP}, nil); err != nil {
			return err
		}
		if err := m.WaitReady(ctx, spec.TP); err != nil {
			return err
		}
		files, size, err := writeSegmentFiles(spec.Files)
		if err != nil {
			return err
		}
		tr, err := tier.New(meta, st, tier.WithBrokerID(3), tier.WithLogger(log))
		if err != nil {
			return err
		}
		cp := &copier{tp: spec.TP, meta: meta, tierer: tr, broker: 3, files: files, size: size}
		// A restarted copy task resumes after the highest offset copied.
		if hi, ok, err := m.HighestOffsetForEpoch(spec.TP, 0); err != nil {
			return err
		} else if ok {
			cp.next = hi + 1
		}
		for cp.next < int64(spec.Segments)*offsetsPerSegment {
			if err := cp.copyNext(); err != nil {
				log.Warn("copy failed; trying again", zap.Error(err))
				if ctx.Err() != nil {
					return err
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		return nil
	case "remove":
		rem, err := remover.New(meta, st, remover.WithBrokerID(3), remover.WithBackoff(200*time.Millisecond, 2*time.Second), remover.WithLogger(log))
		if err != nil {
			return err
		}
		defer rem.Close()
		all := make([]int32, metadataPartitions)
		for i := range all {
			all[i] = int32(i)
		}
		if err := rem.SetOwned(ctx, all); err != nil {
			return err
		}
		// The suite marked the partition before starting this process, so once its metadata
		// partition is read, a missing deletion state means the deletion finished.
		mp := proto.MetadataPartition(spec.TP, metadataPartitions)
		for m.MetadataPartitionReady(mp) != nil || !doomedGone(m, spec.TP) {
			if ctx.Err() != nil {
				return fmt.Errorf("%s not deleted: %+v", spec.TP, rem.Stats())
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}
	return fmt.Errorf("unknown role %q", spec.Role)
}
