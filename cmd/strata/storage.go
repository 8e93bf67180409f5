package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/rsm"
	"github.com/stratalog/strata/rsm/local"
	"github.com/stratalog/strata/rsm/s3"
)

// storageFlags say where the segments' data is: an S3 bucket or a local directory laid out as
// Kafka's LocalTieredStorage.
type storageFlags struct {
	s3Bucket, s3Prefix, s3Endpoint, s3Region string
	s3PathStyle                              bool
	localDir                                 string
}

func (f *storageFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.s3Bucket, "s3-bucket", "", "S3 bucket holding the segments (credentials: the standard AWS chain)")
	fl.StringVar(&f.s3Prefix, "s3-prefix", "", "key prefix of the segments in the bucket")
	fl.StringVar(&f.s3Endpoint, "s3-endpoint", "", "URL of an S3-compatible server (default AWS)")
	fl.StringVar(&f.s3Region, "s3-region", "", "bucket region (default from the AWS chain)")
	fl.BoolVar(&f.s3PathStyle, "s3-path-style", false, "address the bucket in the path (implied by --s3-endpoint)")
	fl.StringVar(&f.localDir, "local-dir", "", "directory of a local tiered storage (Kafka's LocalTieredStorage rsm.config.dir); must exist")
}

// open returns the configured storage, or nil when none is. A local directory that does not
// exist is an error: verify would otherwise report every segment's data as missing.
func (f *storageFlags) open(ctx context.Context) (rsm.Manager, error) {
	switch {
	case f.s3Bucket != "" && f.localDir != "":
		return nil, fmt.Errorf("--s3-bucket and --local-dir: give one storage, not both")
	case f.s3Bucket != "":
		return s3.New(ctx, s3.Config{Bucket: f.s3Bucket, Prefix: f.s3Prefix, Endpoint: f.s3Endpoint, Region: f.s3Region,
			PathStyle: f.s3PathStyle || f.s3Endpoint != ""})
	case f.localDir != "":
		st, err := os.Stat(f.localDir)
		if err != nil {
			return nil, fmt.Errorf("--local-dir: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("--local-dir %s: not a directory", f.localDir)
		}
		return local.New(f.localDir)
	}
	return nil, nil
}
