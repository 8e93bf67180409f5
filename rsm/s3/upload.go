package s3

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"
)

// checksumType is the checksum type a multipart upload declares for algorithm a: COMPOSITE
// (each part checked against its own checksum, and the parts' checksums at completion) where S3
// allows it, FULL_OBJECT for CRC-64/NVME, which allows nothing else, and none without an
// algorithm. Saying it matters: a server told neither may compute a checksum of its own over
// every byte (versitygw computes CRC-64/NVME, which costs it more CPU than receiving the data).
func checksumType(a types.ChecksumAlgorithm) types.ChecksumType {
	switch a {
	case "":
		return ""
	case types.ChecksumAlgorithmCrc64nvme:
		return types.ChecksumTypeFullObject
	}
	return types.ChecksumTypeComposite
}

// putMultipart uploads size bytes of r to key as a multipart upload, o.concurrency parts at a
// time. Each part is an io.SectionReader over r, so nothing is buffered: memory does not grow
// with the part size or the log size, and a retried part is re-read from r.
//
// The feature/s3/manager uploader would do most of this, but it is deprecated, aborts a failed
// upload with the caller's context (which is often the canceled reason for the failure, leaving
// the parts behind), and buffers parts of readers it cannot seek.
//
// On failure the upload is aborted on a context detached from ctx, so that no parts are left
// behind even when ctx was canceled; only if the abort itself fails does the error say so,
// with the upload id.
func (s *Store) putMultipart(ctx context.Context, key string, r io.ReaderAt, size int64) error {
	partSize := s.o.partSize
	if (size+partSize-1)/partSize > maxParts {
		partSize = (size + maxParts - 1) / maxParts
	}
	// The copy id marks the object this upload creates, so that a Complete whose response was
	// lost can be recognized as done (see completedEarlier).
	copyID := rand.Text()
	created, err := s.client.CreateMultipartUpload(ctx, &s3sdk.CreateMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(key),
		ChecksumAlgorithm: s.o.checksum,
		ChecksumType:      checksumType(s.o.checksum),
		Metadata:          map[string]string{copyIDMetadata: copyID},
	})
	if err != nil {
		return classify(err)
	}
	uploadID := aws.ToString(created.UploadId)
	if attempts, ok := retry.GetAttemptResults(created.ResultMetadata); ok && len(attempts.Results) > 1 {
		// An attempt whose response was lost may have created an upload of its own, which
		// nothing would ever abort.
		s.abortOthers(ctx, key, uploadID)
	}
	parts, err := s.uploadParts(ctx, key, uploadID, r, size, partSize)
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3sdk.CompleteMultipartUploadInput{
			Bucket:          aws.String(s.bucket),
			Key:             aws.String(key),
			UploadId:        aws.String(uploadID),
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if err == nil {
			return nil
		}
		if isCode(err, "NoSuchUpload") {
			// A retried Complete whose first attempt succeeded but whose response was lost,
			// or an upload aborted by someone else.
			if s.completedEarlier(ctx, key, copyID, size) {
				return nil
			}
			return fmt.Errorf("completing multipart upload %s: the upload was aborted: %w", uploadID, err)
		}
		err = fmt.Errorf("completing multipart upload %s: %w", uploadID, classify(err))
	}

	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, aerr := s.client.AbortMultipartUpload(actx, &s3sdk.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(key),
		UploadId: aws.String(uploadID),
	})
	if aerr != nil && !isCode(aerr, "NoSuchUpload") {
		s.log.Warn("rsm/s3: could not abort a failed multipart upload; its parts stay until aborted",
			zap.String("key", key), zap.String("uploadID", uploadID), zap.Error(aerr))
		return fmt.Errorf("%w (aborting multipart upload %s failed too, its parts stay until it is aborted: %v)", err, uploadID, aerr)
	}
	return err
}

// copyIDMetadata is the user metadata key (x-amz-meta-strata-copy-id) of a multipart upload's
// copy id.
const copyIDMetadata = "strata-copy-id"

// completedEarlier reports whether key holds the object of the upload marked copyID.
func (s *Store) completedEarlier(ctx context.Context, key, copyID string, size int64) bool {
	out, err := s.client.HeadObject(ctx, &s3sdk.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return false
	}
	for k, v := range out.Metadata {
		if strings.EqualFold(k, copyIDMetadata) {
			return v == copyID && aws.ToInt64(out.ContentLength) == size
		}
	}
	return false
}

// abortOthers aborts every upload of key but keep. Best effort: what it misses, List reports.
func (s *Store) abortOthers(ctx context.Context, key, keep string) {
	out, err := s.client.ListMultipartUploads(ctx, &s3sdk.ListMultipartUploadsInput{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(key),
	})
	if err != nil {
		s.log.Warn("rsm/s3: could not list the uploads a retried CreateMultipartUpload may have left", zap.String("key", key), zap.Error(err))
		return
	}
	for _, u := range out.Uploads {
		if aws.ToString(u.Key) != key || aws.ToString(u.UploadId) == keep {
			continue
		}
		if _, err := s.client.AbortMultipartUpload(ctx, &s3sdk.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: u.Key, UploadId: u.UploadId,
		}); err != nil && !isCode(err, "NoSuchUpload") {
			s.log.Warn("rsm/s3: could not abort a stray upload", zap.String("key", key), zap.String("uploadID", aws.ToString(u.UploadId)), zap.Error(err))
		}
	}
}

// uploadParts sends the parts and returns them in part-number order for
// CompleteMultipartUpload. The first failure cancels the parts still in flight.
func (s *Store) uploadParts(ctx context.Context, key, uploadID string, r io.ReaderAt, size, partSize int64) ([]types.CompletedPart, error) {
	n := int((size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range min(s.o.concurrency, n) {
		wg.Go(func() {
			for i := range next {
				off := int64(i) * partSize
				length := min(partSize, size-off)
				out, err := s.client.UploadPart(ctx, &s3sdk.UploadPartInput{
					Bucket:            aws.String(s.bucket),
					Key:               aws.String(key),
					UploadId:          aws.String(uploadID),
					PartNumber:        aws.Int32(int32(i + 1)),
					Body:              io.NewSectionReader(r, off, length),
					ContentLength:     aws.Int64(length),
					ChecksumAlgorithm: s.o.checksum,
				})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("uploading part %d of %d of multipart upload %s: %w", i+1, n, uploadID, classify(err))
					}
					mu.Unlock()
					cancel()
					continue
				}
				// S3 requires each part's checksum again in CompleteMultipartUpload when the
				// upload was created with a checksum algorithm.
				parts[i] = types.CompletedPart{
					PartNumber:        aws.Int32(int32(i + 1)),
					ETag:              out.ETag,
					ChecksumCRC32:     out.ChecksumCRC32,
					ChecksumCRC32C:    out.ChecksumCRC32C,
					ChecksumCRC64NVME: out.ChecksumCRC64NVME,
					ChecksumSHA1:      out.ChecksumSHA1,
					ChecksumSHA256:    out.ChecksumSHA256,
				}
			}
		})
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return parts, nil
}
