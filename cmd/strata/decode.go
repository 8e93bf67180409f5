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
	var input, format string
	cmd := &cobra.Command{
		Use:   "decode",
		Short: "Decode __remote_log_metadata record values read from stdin, one per line",
		Long: `decode reads record values of __remote_log_metadata from stdin, one per line (hex by default,
or base64 with --input base64; blank lines are ignored), and prints one line per record: a JSON
object (--format json) or the text Kafka's RemoteLogMetadataFormatter prints (--format text).
A line that does not decode is reported on stderr with its line number; the others still decode,
and the exit status is non-zero.`,
		Example: `  echo 0102000403666f6f... | strata decode --format text
  kafka-console-consumer ... --property print.value=true | strata decode --input base64`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(format, "json", "text"); err != nil {
				return err
			}
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
				if err := decodeLine(out, text, parse, format); err != nil {
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
		},
	}
	cmd.Flags().StringVar(&input, "input", "hex", "encoding of each input line: hex or base64")
	cmd.Flags().StringVar(&format, "format", "json", "output: json (one object per line) or text (Kafka's toString)")
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
