package main

import (
	"cmp"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

const exitHelp = `
Exit status: 0 on success; 1 when the command found what it reports (verify's anomalies, rows
left incomplete by a halted metadata partition); 2 on any error (usage, connection, storage,
bad input).`

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Inspect, verify and repair Kafka's tiered-storage metadata",
		Long: `strata reads the records of Kafka's __remote_log_metadata topic (KIP-405 tiered storage),
Apache Kafka's own included, and shows what a cluster keeps in remote storage.
` + exitHelp,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("strata {{.Version}}\n")
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newDecodeCmd(), newLocateCmd(), newSegmentsCmd(), newPartitionsCmd(), newDescribeCmd(),
		newTailCmd(), newCheckpointCmd(), newVerifyCmd(), newRepairCmd(), newSkipCmd(), newDemoCmd(), newServeCmd())
	addExitHelp(root)
	return root
}

func addExitHelp(cmd *cobra.Command) {
	for _, c := range cmd.Commands() {
		c.Long = strings.TrimRight(cmp.Or(c.Long, c.Short), "\n") + "\n" + exitHelp
		addExitHelp(c)
	}
}

// version is the module version, the commit and the Go version the binary was built with, as
// the build recorded them.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(no build information)"
	}
	v, commit, dirty := bi.Main.Version, "unknown", ""
	if v == "" {
		v = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			commit = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	return fmt.Sprintf("%s (commit %s%s, %s)", v, commit, dirty, bi.GoVersion)
}

// formatValue is a --format flag that refuses, while parsing, a value outside its choices.
type formatValue struct {
	value   string
	allowed []string
}

func (f *formatValue) String() string { return f.value }
func (f *formatValue) Type() string   { return "format" }
func (f *formatValue) Set(s string) error {
	if !slices.Contains(f.allowed, s) {
		return fmt.Errorf("want one of %s", strings.Join(f.allowed, ", "))
	}
	f.value = s
	return nil
}

// addFormat registers the command's --format with its choices, the first being the default.
func addFormat(cmd *cobra.Command, help string, allowed ...string) *formatValue {
	f := &formatValue{value: allowed[0], allowed: allowed}
	cmd.Flags().Var(f, "format", fmt.Sprintf("output: %s (%s)", strings.Join(allowed, ", "), help))
	return f
}

// notNegative refuses a negative duration flag.
func notNegative(name string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("--%s %s: must not be negative", name, d)
	}
	return nil
}
