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
		Long: `decode reads record values of __remote_log_metadata from stdin, one per line, and prints one
line per record: a JSON object (--format json) or the text Kafka's RemoteLogMetadataFormatter
prints (--format text). A line that does not decode is reported on stderr with its line number;
the others still decode, and the exit status is 2. Blank lines are ignored.

--input names how each line holds its value: hex (the default) or base64, where white space is
ignored; or escaped, the form Kafka's console consumer prints with
--value-deserializer org.apache.kafka.common.serialization.BytesDeserializer (Kafka's Bytes:
printable ASCII as itself, every other byte and the backslash as \xHH), where every character
counts. Kafka's console consumer without that deserializer prints raw bytes, which may hold
newlines, so its output cannot be split into records.`,
		Example: `  echo 01020004666f6f069f530ddb894466bd439ae5bc224ec6000000000000000000000000000000007b0000 | strata decode --format text
  base64 -w0 record.bin | strata decode --input base64
  kafka-console-consumer.sh --bootstrap-server localhost:9092 --topic __remote_log_metadata --from-beginning --value-deserializer org.apache.kafka.common.serialization.BytesDeserializer | strata decode --input escaped
  strata tail --from-beginning --format json     # the whole topic, decoded`,
		Args: cobra.NoArgs,
	}
	format := addFormat(cmd, "json: one object per line; text: Kafka's toString", "json", "text")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		var parse func(string) ([]byte, error)
		keepSpace := false
		switch input {
		case "hex":
			parse = hex.DecodeString
		case "base64":
			parse = decodeBase64
		case "escaped":
			// A space is a byte of the value here, not padding.
			parse, keepSpace = decodeEscaped, true
		default:
			return fmt.Errorf("--input %q: want hex, base64 or escaped", input)
		}
		out := bufio.NewWriter(cmd.OutOrStdout())
		defer out.Flush()
		sc := bufio.NewScanner(cmd.InOrStdin())
		sc.Buffer(make([]byte, 64*1024), 64*1024*1024)
		bad, line := 0, 0
		for sc.Scan() {
			line++
			text := sc.Text()
			if !keepSpace {
				text = strings.Map(dropSpace, text)
			}
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
	cmd.Flags().StringVar(&input, "input", "hex", "encoding of each input line: hex, base64 or escaped (Kafka's BytesDeserializer)")
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

// decodeEscaped reverses org.apache.kafka.common.utils.Bytes.toString, which the console
// consumer prints for a value read by BytesDeserializer: a byte from ' ' to '~' other than '\\'
// stands for itself, any other byte is written \xHH (two hex digits, upper case in Kafka's
// output; either case is accepted).
func decodeEscaped(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+4 > len(s) || s[i+1] != 'x' {
				return nil, fmt.Errorf("column %d: a backslash not followed by xHH", i+1)
			}
			b, err := hex.DecodeString(s[i+2 : i+4])
			if err != nil {
				return nil, fmt.Errorf("column %d: a backslash not followed by xHH", i+1)
			}
			out = append(out, b[0])
			i += 3
		case c >= ' ' && c <= '~':
			out = append(out, c)
		default:
			return nil, fmt.Errorf("column %d: byte %#02x, which Kafka's Bytes would have escaped", i+1, c)
		}
	}
	return out, nil
}

func dropSpace(r rune) rune {
	if unicode.IsSpace(r) {
		return -1
	}
	return r
}
