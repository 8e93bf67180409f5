package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "strata",
		Short: "Inspect, verify and repair Kafka's tiered-storage metadata",
		Long: `strata reads the records of Kafka's __remote_log_metadata topic (KIP-405 tiered storage),
Apache Kafka's own included, and shows what a cluster keeps in remote storage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	var cf clusterFlags
	var format string
	var sf storageFlags
	cf.register(root)
	sf.register(root)
	root.PersistentFlags().StringVar(&format, "format", "table", "output: table or json (tail and decode also take text)")
	root.AddCommand(newDecodeCmd(), newLocateCmd(),
		newSegmentsCmd(&cf, &format), newPartitionsCmd(&cf, &format), newDescribeCmd(&cf, &format),
		newTailCmd(&cf, &format), newCheckpointCmd(&cf, &format),
		newVerifyCmd(&cf, &sf, &format), newRepairCmd(&cf, &sf, &format), newDemoCmd())
	return root
}

// checkFormat rejects a --format value outside allowed, naming the choices.
func checkFormat(format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return fmt.Errorf("--format %q: want one of %v", format, allowed)
}
