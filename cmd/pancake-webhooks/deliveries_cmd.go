package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

func newDeliveriesCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := groupCmd("deliveries", "Inspect and retry the shop's webhook deliveries through the API", `  pancake-webhooks deliveries list --webhook wh_01jd9x… --status failed
  pancake-webhooks deliveries get dlv_01jd9y…
  pancake-webhooks deliveries retry dlv_01jd9y…`)
	cmd.Long = `Inspect the shop's deliveries (each one HTTP attempt to send one event to one
webhook), the queue of those still to be made, and retry one now.
` + apiFlagsHelp
	f.register(cmd)
	cmd.AddCommand(deliveriesListCmd(f), deliveriesGetCmd(f), deliveriesPendingCmd(f), deliveriesRetryCmd(f))
	return cmd
}

func deliveriesListCmd(f *apiFlags) *cobra.Command {
	var (
		p        pancake.DeliveryListParams
		event    string
		all      bool
		pageSize int
	)
	cmd := &cobra.Command{
		Use:   "list [--webhook ID] [--status success|failed|pending] [--event EVENT] [--from YYYY-MM-DD] [--to YYYY-MM-DD]",
		Short: "List delivery attempts, newest first, a page at a time",
		Long: `List the shop's delivery attempts, newest first, one page at a time
(--page, --page-size); --all walks every page. Queued deliveries are listed
only with --status pending (see also deliveries pending).

With --json a page is printed as the API's page object; with --all --json,
as one JSON array of deliveries.`,
		Example: `  pancake-webhooks deliveries list
  pancake-webhooks deliveries list --webhook wh_01jd9x… --status failed --page 2
  pancake-webhooks deliveries list --event order.created --from 2026-11-01 --to 2026-11-07 --all
  pancake-webhooks deliveries list --status failed --all --json | jq -r '.[].id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkDate("from", p.FromDate); err != nil {
				return err
			}
			if err := checkDate("to", p.ToDate); err != nil {
				return err
			}
			if p.PageNumber < 1 {
				return usageErr("--page must be 1 or more")
			}
			if pageSize < 0 || pageSize > 100 || pageSize == 0 && cmd.Flags().Changed("page-size") {
				return usageErr("--page-size must be 1–100")
			}
			p.PageSize = pageSize
			p.Event = pancake.WebhookEvent(event)
			c, err := f.client()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if all {
				return f.listAll(cmd, c, p, w)
			}
			page, err := c.Webhooks.ListDeliveries(cmd.Context(), p)
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(w, page, func(w io.Writer) error { return printDeliveryPage(w, page) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&p.WebhookID, "webhook", "", "only those of this webhook")
	fl.StringVar(&p.Status, "status", "", "only those of this status: success, failed or pending")
	fl.StringVar(&event, "event", "", "only those of this event type")
	fl.StringVar(&p.FromDate, "from", "", "only those made on or after this day, YYYY-MM-DD (UTC)")
	fl.StringVar(&p.ToDate, "to", "", "only those made on or before this day, YYYY-MM-DD (UTC)")
	fl.IntVar(&p.PageNumber, "page", 1, "the page to show (with --all: the page to start from)")
	fl.IntVar(&pageSize, "page-size", 0, "deliveries per page, 1–100 (default 20; 100 with --all)")
	fl.BoolVar(&all, "all", false, "walk every page")
	_ = cmd.RegisterFlagCompletionFunc("event", completeEvents)
	_ = cmd.RegisterFlagCompletionFunc("status", completeWords(pancake.StatusSuccess, pancake.StatusFailed, pancake.StatusPending))
	_ = cmd.RegisterFlagCompletionFunc("webhook", func(cmd *cobra.Command, _ []string, s string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return f.completeWebhookIDs(cmd, nil, s)
	})
	noEnvFlags(fl)
	return cmd
}

// printDeliveryPage prints one page of deliveries and where it is in the
// list.
func printDeliveryPage(w io.Writer, page *pancake.DeliveryList) error {
	if page.Total == 0 {
		_, err := fmt.Fprintln(w, "No deliveries.")
		return err
	}
	if len(page.Data) == 0 {
		_, err := fmt.Fprintf(w, "No deliveries on page %d: %s, %s.\n", page.PageNumber,
			plural(page.TotalPages, "page", "pages"), plural(page.Total, "delivery", "deliveries"))
		return err
	}
	t := newDeliveryTable(w)
	for i := range page.Data {
		t.add(&page.Data[i])
	}
	if err := t.flush(); err != nil {
		return err
	}
	footer := fmt.Sprintf("page %d of %d, %s", page.PageNumber, page.TotalPages, plural(page.Total, "delivery", "deliveries"))
	if page.PageNumber < page.TotalPages {
		footer += fmt.Sprintf("; --page %d for more", page.PageNumber+1)
	}
	_, err := fmt.Fprintln(w, footer)
	return err
}

// listAll walks every page with the SDK's iterator: a table, or with --json
// a JSON array written as the pages come.
func (f *apiFlags) listAll(cmd *cobra.Command, c *pancake.Client, p pancake.DeliveryListParams, w io.Writer) error {
	n := 0
	if f.json {
		if _, err := io.WriteString(w, "["); err != nil {
			return err
		}
		for d, err := range c.Webhooks.Deliveries(cmd.Context(), p) {
			if err != nil {
				io.WriteString(w, "]\n")
				return f.apiErr(err)
			}
			b, err := json.MarshalIndent(d, "  ", "  ")
			if err != nil {
				return err
			}
			sep := ",\n  "
			if n == 0 {
				sep = "\n  "
			}
			n++
			if _, err := io.WriteString(w, sep+string(b)); err != nil {
				return err
			}
		}
		if n > 0 {
			_, err := io.WriteString(w, "\n]\n")
			return err
		}
		_, err := io.WriteString(w, "]\n")
		return err
	}
	var t *deliveryTable
	for d, err := range c.Webhooks.Deliveries(cmd.Context(), p) {
		if err != nil {
			if t != nil {
				t.flush()
			}
			return f.apiErr(err)
		}
		if t == nil {
			t = newDeliveryTable(w)
		}
		t.add(&d)
		n++
	}
	if t == nil {
		_, err := fmt.Fprintln(w, "No deliveries.")
		return err
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, plural(n, "delivery", "deliveries"))
	return err
}

func deliveriesGetCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get DELIVERY_ID",
		Short: "Show a delivery: its request, response and payload",
		Example: `  pancake-webhooks deliveries get dlv_01jd9y…
  pancake-webhooks deliveries get dlv_01jd9y… --json | jq .response`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeDeliveryIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			d, err := c.Webhooks.GetDeliveryByID(cmd.Context(), args[0])
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), d, func(w io.Writer) error { return printDelivery(w, d) })
		},
	}
}

func deliveriesPendingCmd(f *apiFlags) *cobra.Command {
	var params pancake.PendingListParams
	cmd := &cobra.Command{
		Use:   "pending [--webhook ID] [--page N] [--page-size N]",
		Short: "List the queued deliveries, next due first",
		Long: `List the deliveries queued or waiting for a retry, next due first, one page
at a time (--page, --page-size), and how many there are in all (of the
webhook, with --webhook).`,
		Example: `  pancake-webhooks deliveries pending
  pancake-webhooks deliveries pending --webhook wh_01jd9x… --page 2 --page-size 100
  pancake-webhooks deliveries pending --json | jq .total_count`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if params.PageNumber < 1 {
				return usageErr("--page must be 1 or more")
			}
			if params.PageSize < 0 || params.PageSize > 100 || params.PageSize == 0 && cmd.Flags().Changed("page-size") {
				return usageErr("--page-size must be 1–100")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			params.PageSize = cmp.Or(params.PageSize, pendingPageSize) // the footer counts pages of it
			p, err := c.Webhooks.GetPendingDeliveries(cmd.Context(), params)
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), p, func(w io.Writer) error { return printPending(w, p, params) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&params.WebhookID, "webhook", "", "only those of this webhook")
	fl.IntVar(&params.PageNumber, "page", 1, "the page to show")
	fl.IntVar(&params.PageSize, "page-size", 0, "deliveries per page, 1–100 (default 20)")
	_ = cmd.RegisterFlagCompletionFunc("webhook", func(cmd *cobra.Command, _ []string, s string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return f.completeWebhookIDs(cmd, nil, s)
	})
	noEnvFlags(fl)
	return cmd
}

// pendingPageSize is the page size of deliveries pending without
// --page-size (the server's default too).
const pendingPageSize = 20

// printPending prints a page of the queue and where it is in the queue.
func printPending(w io.Writer, p *pancake.PendingDeliveries, params pancake.PendingListParams) error {
	if p.TotalCount == 0 {
		_, err := fmt.Fprintln(w, "No pending deliveries.")
		return err
	}
	if len(p.Deliveries) == 0 {
		_, err := fmt.Fprintf(w, "No pending deliveries on page %d; %s in all.\n", params.PageNumber,
			plural(p.TotalCount, "pending delivery", "pending deliveries"))
		return err
	}
	tw := newTable(w)
	row(tw, "ID", "WEBHOOK", "EVENT", "ATTEMPT", "DUE", "TRIGGER")
	for _, d := range p.Deliveries {
		row(tw, d.ID, d.WebhookID, string(d.Event), fmt.Sprint(d.Attempt), whenPtr(d.ScheduledAt), d.Trigger)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	footer := plural(p.TotalCount, "pending delivery", "pending deliveries")
	if size := params.PageSize; p.TotalCount > size {
		pages := (p.TotalCount + size - 1) / size
		footer = fmt.Sprintf("page %d of %d, %s", params.PageNumber, pages, footer)
		if params.PageNumber < pages {
			footer += fmt.Sprintf("; --page %d for more", params.PageNumber+1)
		}
	}
	_, err := fmt.Fprintln(w, footer)
	return err
}

func deliveriesRetryCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "retry DELIVERY_ID",
		Short: "Send a delivery's event again now, as a new delivery",
		Long: `Send the delivery's event again to its webhook now, as a new delivery, and
show that attempt. Successful and failed deliveries alike may be retried, and
a retry is sent even when a later attempt of the same event succeeded: choose
what to retry with care (the second example takes the events whose latest
attempt failed with no automatic retry left). A delivery of a disabled webhook
is not retried (409 conflict, exit 5): enable the webhook first.`,
		Example: `  pancake-webhooks deliveries retry dlv_01jd9y…
  # each event whose latest attempt (newest first; test sends aside) failed with no automatic retry left:
  pancake-webhooks deliveries list --webhook wh_01jd9x… --from 2026-11-20 --all --json |
    jq -r '[.[] | select(.trigger != "test")] | group_by(.event_id) | map(.[0]) | .[] |
      select(.status == "failed" and .next_retry_at == null) | .id' |
    xargs -n1 pancake-webhooks deliveries retry`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeDeliveryIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			r, err := c.Webhooks.RetryDelivery(cmd.Context(), args[0])
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), r, func(w io.Writer) error { return printResult(w, r) })
		},
	}
}
