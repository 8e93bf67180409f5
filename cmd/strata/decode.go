package main

import (
	"bufio"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/stratalog/strata/proto"
)

func newDecodeCmd() *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "decode",
		Short: "Decode __remote_log_metadata record values read from stdin, one per line",
		Long: `decode reads record values of __remote_log_metadata from stdin, one per line (hex by default,
or base64 with --input base64; blank lines are ignored), and prints one line per record: a JSON
object (--format json) or the text Kafka's RemoteLogMetadataFormatter prints (--format text).
A line that does not decode is reported on stderr with its line number; the others still decode,
and the exit status is 2.

Kafka's console consumer prints a record's value as raw bytes, which may hold newlines, so its
output cannot be split into records: to read the topic decoded, use strata tail, or Kafka's
console consumer with its RemoteLogMetadataFormatter. decode is for values one has as files or
as text: one record value in a file, say, encoded on one line by base64 -w0 or xxd -p.`,
		Example: `  echo 01020004666f6f069f530ddb894466bd439ae5bc224ec6000000000000000000000000000000007b0000 | strata decode --format text
  base64 -w0 record.bin | strata decode --input base64
  strata tail --from-beginning --format json     # the whole topic, decoded`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "json: one object per line; text: Kafka's toString", "json", "text")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var parse func(string) ([]byte, error)
		switch input {
		case "hex":
			parse = hex.DecodeString
		case "base64":
			parse = decodeBase64
		default:
			return fmt.Errorf("--input %q: want hex or base64", input)
		}
		out := bufio.NewWriter(cmd.OutOrStdout())
		defer out.Flush()
		sc := bufio.NewScanner(cmd.InOrStdin())
		sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
		bad, line := 0, 0
		for sc.Scan() {
			line++
			text := strings.Map(dropSpace, sc.Text())
			if text == "" {
				continue
			}
			if err := decodeLine(out, text, parse, format.value); err != nil {
				bad++
				out.Flush()
				fmt.Fprintf(cmd.ErrOrStderr(), "strata decode: line %d: %v\n", line, err)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("reading stdin after line %d: %w", line, err)
		}
		if bad > 0 {
			return &reportedError{fmt.Sprintf("%d of the input lines did not decode", bad)}
		}
		return nil
	}
	cmd.Flags().StringVar(&input, "input", "hex", "encoding of each input line: hex or base64")
	return cmd
}

func decodeLine(out *bufio.Writer, text string, parse func(string) ([]byte, error), format string) error {
	raw, err := parse(text)
	if err != nil {
		return fmt.Errorf("not valid input encoding: %w", err)
	}
	r, err := proto.Decode(raw)
	if err != nil {
		return err
	}
	if format == "text" {
		out.WriteString(r.String())
	} else {
		b, err := proto.MarshalRecordJSON(r)
		if err != nil {
			return err
		}
		out.Write(b)
	}
	return out.WriteByte('\n')
}

// decodeBase64 accepts standard and URL-safe base64, padded or not, as tools print both.
func decodeBase64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

func dropSpace(r rune) rune {
	if unicode.IsSpace(r) {
		return -1
	}
	return r
}
