package report

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// Machine is what the run ran on.
type Machine struct {
	CPUModel string
	NumCPU   int
	MemTotal string // as /proc/meminfo says, e.g. "24598756 kB"
	Kernel   string
	OSArch   string
}

// ReadMachine describes this machine from /proc; a field it cannot read says "unknown".
func ReadMachine() Machine {
	m := Machine{CPUModel: "unknown", NumCPU: runtime.NumCPU(), MemTotal: "unknown", Kernel: "unknown",
		OSArch: runtime.GOOS + "/" + runtime.GOARCH}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.CPUModel = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		m.MemTotal = v
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// procField returns the value of the first "name: value" line of a /proc file.
func procField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// Versions are the software measured and measuring.
type Versions struct {
	Strata      string // git commit the benchmark was built from, "(modified)" when the tree was
	Go          string
	Java        string // as the Kafka side's JVM reports it
	JavaVM      string
	JVMArgs     string
	KafkaBroker string // the broker's version (the harness's pin)
	KafkaRLMM   string // the metadata manager's version, as its jar reports it
	Modules     []string
}

// ReadVersions fills what this binary knows about itself: Strata's commit, Go's version and
// the versions of the modules that matter to the figures (franz-go, Pebble).
func ReadVersions() Versions {
	v := Versions{Strata: "unknown", Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		v.Strata = rev
		if modified == "true" {
			v.Strata += " (with uncommitted changes)"
		}
	}
	for _, d := range bi.Deps {
		switch d.Path {
		case "github.com/twmb/franz-go", "github.com/cockroachdb/pebble/v2":
			v.Modules = append(v.Modules, d.Path+" "+d.Version)
		}
	}
	return v
}
