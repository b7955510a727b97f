package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// DefaultAPIURL is where the client commands find the API unless --api-url
// or PANCAKE_API_URL says otherwise: a `serve` on this machine.
const DefaultAPIURL = "http://127.0.0.1:8080/api/v1"

// apiFlags are the flags shared by the client commands (webhooks,
// deliveries, events): where the API is, whose key, which shop, and the
// output mode.
type apiFlags struct {
	url  string
	key  string
	shop string
	json bool
}

// register adds the flags to cmd as persistent flags, so that every
// subcommand has them.
func (f *apiFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.url, "api-url", DefaultAPIURL, "API root, /api/v1 included (env PANCAKE_API_URL)")
	pf.StringVar(&f.key, "api-key", "", "the shop's API key (env PANCAKE_API_KEY)")
	pf.StringVar(&f.shop, "shop", "", "shop id (env PANCAKE_SHOP_ID)")
	pf.BoolVar(&f.json, "json", false, "print JSON (the API's objects and fields; null and empty ones left out) instead of a table")
	_ = pf.SetAnnotation("shop", "env", []string{"PANCAKE_SHOP_ID"})
	noEnv(pf, "json")
}

// client returns an SDK client for the flags, or a usage error when the key
// or the shop is missing or the URL is not one.
func (f *apiFlags) client() (*pancake.Client, error) {
	if f.key == "" {
		return nil, usageErr("--api-key (or PANCAKE_API_KEY) is required")
	}
	if f.shop == "" {
		return nil, usageErr("--shop (or PANCAKE_SHOP_ID) is required")
	}
	u, err := url.Parse(f.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		// The value is not repeated: it may carry a password.
		return nil, usageErr("--api-url must be an http(s) URL of the API root, like %s", DefaultAPIURL)
	}
	return pancake.NewClient(f.key, f.shop,
		pancake.WithBaseURL(f.url),
		pancake.WithUserAgent("pancake-webhooks/"+Version()+" "+pancake.DefaultUserAgent),
	), nil
}

// apiErr maps an error of the SDK to the CLI's exit codes and a message on
// one line that never contains the API key: 404 is ExitNotFound, 401 and
// 403 ExitAuth, 400, 409 and 413 ExitInvalid, anything else (other
// statuses, network) ExitError.
func (f *apiFlags) apiErr(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	code := ExitError
	var msg string
	var pe *pancake.Error
	switch {
	case errors.As(err, &pe):
		switch pe.StatusCode {
		case http.StatusNotFound:
			code = ExitNotFound
		case http.StatusUnauthorized, http.StatusForbidden:
			code = ExitAuth
		case http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge:
			code = ExitInvalid
		}
		msg = fmt.Sprintf("%d %s", pe.StatusCode, pe.Message)
		if pe.Code != "" {
			msg = fmt.Sprintf("%d %s: %s", pe.StatusCode, pe.Code, pe.Message)
		}
		// One bad field is the message itself ("url: must use https").
		if d := formatDetails(pe.Details); d != "" && !strings.Contains(pe.Message, d) {
			msg += " (" + d + ")"
		}
		if pe.RetryAfter > 0 {
			msg += fmt.Sprintf("; retry after %s", pe.RetryAfter)
		}
		if pe.StatusCode == http.StatusNotFound && (pe.Code == "" || pe.Message == "No such path") {
			// Not a webhook or a delivery missing: no such API at
			// all, which is a setting to fix, not exit 3.
			code = ExitError
			msg += fmt.Sprintf("; no Pancake Webhooks API at %s: --api-url (or PANCAKE_API_URL) is its base URL, ending in /api/v1", redactedURL(f.url))
		}
	case errors.Is(err, pancake.ErrInvalidID):
		code, msg = ExitUsage, err.Error()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		msg = err.Error()
	case isNetError(err):
		msg = fmt.Sprintf("cannot reach the API at %s: %v", redactedURL(f.url), err)
	default:
		msg = err.Error()
	}
	if f.key != "" {
		msg = strings.ReplaceAll(msg, f.key, "REDACTED")
	}
	return &exitError{code: code, err: errors.New(strings.ReplaceAll(msg, "\n", " "))}
}

// isNetError reports whether err is a failure to talk to the server
// (refused, DNS, reset, timeout).
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

// formatDetails writes an error's details as "field: why; field: why",
// sorted by field.
func formatDetails(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		var v string
		switch x := d[k].(type) {
		case string:
			v = x
		default:
			b, _ := json.Marshal(x)
			v = string(b)
		}
		parts = append(parts, k+": "+v)
	}
	return strings.Join(parts, "; ")
}

// redactedURL returns u without a password, for messages.
func redactedURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(the --api-url)"
	}
	return p.Redacted()
}

// maxData bounds what --data reads from a file or stdin: far more than a
// server takes (256 KiB by default, --max-body-bytes), far less than
// what @/dev/zero would grow to.
const maxData = 16 << 20

// readData reads a JSON object given to --data: inline JSON, @FILE for a
// file, or - for stdin. Anything but an object is a usage error.
func readData(flag, v string, stdin io.Reader) (map[string]any, error) {
	var raw []byte
	switch {
	case v == "-":
		b, err := readMax(stdin)
		if err != nil {
			return nil, fmt.Errorf("--%s -: read stdin: %w", flag, err)
		}
		raw = b
	case strings.HasPrefix(v, "@"):
		f, err := os.Open(v[1:])
		if err != nil {
			return nil, usageErr("--%s %s: %v", flag, v, errors.Unwrap(err))
		}
		b, err := readMax(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--%s %s: %w", flag, v, err)
		}
		raw = b
	default:
		raw = []byte(v)
	}
	if len(raw) > maxData {
		// It was cut: its JSON would be said to be broken.
		return nil, usageErr("--%s: more than %d MiB of data; a server takes 256 KiB by default", flag, maxData>>20)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, usageErr("--%s must be a JSON object, like '{\"order_id\": \"ord_1\"}' (or @file.json, or - for stdin)", flag)
	}
	if dec.More() {
		return nil, usageErr("--%s must be one JSON object", flag)
	}
	return m, nil
}

// readMax reads r to its end or to one byte more than maxData.
func readMax(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, maxData+1))
}

// events converts the values of an --event flag.
func events(names []string) []pancake.WebhookEvent {
	out := make([]pancake.WebhookEvent, 0, len(names))
	for _, n := range names {
		out = append(out, pancake.WebhookEvent(strings.TrimSpace(n)))
	}
	return out
}

// checkDate refuses a --from/--to/--before that is not YYYY-MM-DD before
// asking the server.
func checkDate(flag, v string) error {
	if v == "" {
		return nil
	}
	if _, err := time.Parse(time.DateOnly, v); err != nil {
		return usageErr("--%s %q: want a date YYYY-MM-DD", flag, v)
	}
	return nil
}

// noEnvFlags marks the flags of a client command as having no environment
// variable: only --api-url, --api-key and --shop come from the environment,
// so that a stray PANCAKE_STATUS cannot change what a command does.
func noEnvFlags(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) { noEnv(fs, f.Name) })
}

// groupCmd returns a command that only holds subcommands: without one it
// prints its help, with an unknown one it is a usage error (cobra would
// print the help and succeed).
func groupCmd(use, short, example string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Example: example,
		Args:    cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErr("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
}

// Shell completion.

func completeEvents(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, e := range pancake.AllEvents() {
		out = append(out, string(e))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func completeWords(words ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return slices.Clone(words), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeWebhookIDs completes the first argument with the shop's webhook
// IDs, asking the API when the key and shop are known (flags or
// environment); nothing otherwise.
func (f *apiFlags) completeWebhookIDs(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, ctx, cancel, ok := f.completionClient(cmd)
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer cancel()
	list, err := c.Webhooks.List(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, w := range list.Data {
		out = append(out, cobra.CompletionWithDesc(w.ID, w.URL))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeDeliveryIDs completes the first argument with the IDs of the
// shop's latest deliveries.
func (f *apiFlags) completeDeliveryIDs(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, ctx, cancel, ok := f.completionClient(cmd)
	if !ok {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer cancel()
	page, err := c.Webhooks.ListDeliveries(ctx, pancake.DeliveryListParams{PageSize: 50})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []cobra.Completion
	for _, d := range page.Data {
		out = append(out, cobra.CompletionWithDesc(d.ID, string(d.Event)+" "+d.Status))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completionClient returns a client for completions, which run without the
// root's PersistentPreRunE: the environment is bound here.
func (f *apiFlags) completionClient(cmd *cobra.Command) (*pancake.Client, context.Context, context.CancelFunc, bool) {
	_ = bindEnv(cmd.Flags())
	c, err := f.client()
	if err != nil {
		return nil, nil, nil, false
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	return c, ctx, cancel, true
}
