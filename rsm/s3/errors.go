package s3

import (
	"context"
	"errors"
	"fmt"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"

	"github.com/stratalog/strata/rsm"
)

// permanentCodes are S3 error codes that the same request will meet again: credentials,
// permissions, the bucket's existence or region, requests S3 rejects as malformed.
var permanentCodes = map[string]string{
	"AccessDenied":                       "access denied",
	"AllAccessDisabled":                  "access denied",
	"AccountProblem":                     "access denied",
	"InvalidAccessKeyId":                 "bad credentials",
	"XAdminUserNotFound":                 "bad credentials", // versitygw's answer to an unknown access key, with 404
	"SignatureDoesNotMatch":              "bad credentials",
	"ExpiredToken":                       "bad credentials",
	"InvalidToken":                       "bad credentials",
	"TokenRefreshRequired":               "bad credentials",
	"AuthorizationHeaderMalformed":       "wrong region or malformed credentials",
	"PermanentRedirect":                  "the bucket is in another region",
	"IllegalLocationConstraintException": "the bucket is in another region",
	"NoSuchBucket":                       "the bucket does not exist",
	"InvalidBucketName":                  "invalid bucket name",
	"InvalidArgument":                    "request rejected",
	"InvalidRequest":                     "request rejected",
	"NotImplemented":                     "the server does not implement this request",
	"MethodNotAllowed":                   "request rejected",
	"InvalidObjectState":                 "the object is archived",
}

// statusCoder is what the SDK's response errors implement.
type statusCoder interface{ HTTPStatusCode() int }

// classify marks an SDK error with the rsm sentinel it deserves, keeping the SDK error (which
// names the operation, status, request id and S3's message) in the chain.
func classify(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		if code == "NoSuchKey" {
			return fmt.Errorf("%w: %w", rsm.ErrNotFound, err)
		}
		if why, ok := permanentCodes[code]; ok {
			return fmt.Errorf("%w: %s: %w", rsm.ErrPermanent, why, err)
		}
	}
	var sc statusCoder
	if errors.As(err, &sc) {
		switch sc.HTTPStatusCode() {
		case 404: // a HEAD or an error without a body; GetObject says NoSuchKey
			return fmt.Errorf("%w: %w", rsm.ErrNotFound, err)
		case 401, 403:
			return fmt.Errorf("%w: access denied: %w", rsm.ErrPermanent, err)
		case 301:
			return fmt.Errorf("%w: the bucket is in another region: %w", rsm.ErrPermanent, err)
		}
	}
	var se *v4.SigningError
	if errors.As(err, &se) {
		return fmt.Errorf("%w: no usable credentials: %w", rsm.ErrPermanent, err)
	}
	if perr := classifyTransport(err); perr != nil {
		return perr
	}
	return err
}

// isCode reports whether err is an S3 error with the given code.
func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
