package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// print writes v as JSON with --json, else as table says.
func (f *apiFlags) print(w io.Writer, v any, table func(io.Writer) error) error {
	if f.json {
		return printJSON(w, v)
	}
	return table(w)
}

const apiFlagsHelp = `
Where and as whom: --api-url (default ` + DefaultAPIURL + `), --api-key and
--shop, or the environment variables PANCAKE_API_URL, PANCAKE_API_KEY and
PANCAKE_SHOP_ID. --json prints JSON for scripts: the API's objects, with its
field names and every digit of the payloads (times as the API writes them,
RFC 3339 in UTC with milliseconds; optional fields that are not set are
left out).

Exit codes: 0 done, 1 failed (server or network), 2 bad command line,
3 not found, 4 bad key or forbidden, 5 rejected input (validation, conflict).`

func newWebhooksCmd() *cobra.Command {
	f := &apiFlags{}
	cmd := groupCmd("webhooks", "Manage the shop's webhooks through the API", `  export PANCAKE_API_URL=http://127.0.0.1:8080/api/v1 PANCAKE_SHOP_ID=shop-42 PANCAKE_API_KEY=pk_…
  pancake-webhooks webhooks list
  pancake-webhooks webhooks create --url https://example.com/hooks --event order.created`)
	cmd.Long = "Manage the shop's webhooks through the API of a running server.\n" + apiFlagsHelp
	f.register(cmd)

	cmd.AddCommand(
		webhooksListCmd(f), webhooksGetCmd(f), webhooksCreateCmd(f), webhooksUpdateCmd(f),
		webhooksDeleteCmd(f), webhooksSetActiveCmd(f, true), webhooksSetActiveCmd(f, false),
		webhooksTestCmd(f), webhooksRotateCmd(f), webhooksStatsCmd(f), webhooksClearCmd(f),
	)
	return cmd
}

func webhooksListCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the shop's webhooks with their health",
		Long: `List the shop's webhooks, oldest first, with their health at a glance
(● healthy, ▲ warning, ✖ error) and the success rate of the last 24 hours.
Secrets are not listed: see webhooks get.`,
		Example: `  pancake-webhooks webhooks list
  pancake-webhooks webhooks list --json | jq -r '.data[] | select(.health_status.status != "healthy") | .id'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			list, err := c.Webhooks.List(cmd.Context())
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), list, func(w io.Writer) error { return printWebhookTable(w, list) })
		},
	}
}

func webhooksGetCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "get WEBHOOK_ID",
		Short:             "Show a webhook, its secret and its health",
		Example:           `  pancake-webhooks webhooks get wh_01jd9x…`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeWebhookIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			h, err := c.Webhooks.GetByID(cmd.Context(), args[0])
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), h, func(w io.Writer) error { return printWebhook(w, h) })
		},
	}
}

func webhooksCreateCmd(f *apiFlags) *cobra.Command {
	var (
		url, description string
		evs              []string
		inactive         bool
	)
	cmd := &cobra.Command{
		Use:   "create --url URL --event EVENT [--event EVENT…]",
		Short: "Create a webhook and show its secret",
		Long: `Create a webhook: the URL receives the events named by --event (repeat it, or
separate them with commas). The answer shows the signing secret (whsec_…)
the receiver verifies deliveries with.`,
		Example: `  pancake-webhooks webhooks create --url https://example.com/hooks --event order.created --event order.updated
  pancake-webhooks webhooks create --url https://example.com/hooks --event order.created,order.cancelled --description "Kitchen display" --inactive
  SECRET=$(pancake-webhooks webhooks create --url https://example.com/hooks --event order.created --json | jq -r .secret_key)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			req := pancake.CreateWebhookRequest{URL: url, Events: events(evs), Description: description}
			if inactive {
				req.IsActive = pancake.Bool(false)
			}
			h, err := c.Webhooks.Create(cmd.Context(), req)
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), h, func(w io.Writer) error { return printWebhook(w, h) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&url, "url", "", "the receiver's URL (https://…)")
	fl.StringSliceVar(&evs, "event", nil, "an event type to send (repeat, or comma-separated)")
	fl.StringVar(&description, "description", "", "what the webhook is for")
	fl.BoolVar(&inactive, "inactive", false, "create it disabled")
	_ = cmd.MarkFlagRequired("url")
	_ = cmd.MarkFlagRequired("event")
	_ = cmd.RegisterFlagCompletionFunc("event", completeEvents)
	noEnvFlags(fl)
	return cmd
}

func webhooksUpdateCmd(f *apiFlags) *cobra.Command {
	var (
		url, description string
		evs              []string
	)
	cmd := &cobra.Command{
		Use:   "update WEBHOOK_ID [--url URL] [--event EVENT…] [--description TEXT]",
		Short: "Change a webhook's URL, events or description",
		Long: `Change a webhook: the flags given replace those fields, the others keep their
value. --event replaces the whole list of events.`,
		Example: `  pancake-webhooks webhooks update wh_01jd9x… --url https://example.com/v2/hooks
  pancake-webhooks webhooks update wh_01jd9x… --event order.created --event order.cancelled --description ""`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeWebhookIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			var req pancake.UpdateWebhookRequest
			if fl.Changed("url") {
				req.URL = pancake.String(url)
			}
			if fl.Changed("event") {
				if len(evs) == 0 {
					return usageErr("--event cannot be empty")
				}
				req.Events = events(evs)
			}
			if fl.Changed("description") {
				req.Description = pancake.String(description)
			}
			if req.URL == nil && req.Events == nil && req.Description == nil {
				return usageErr("nothing to update: give --url, --event or --description")
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			h, err := c.Webhooks.Update(cmd.Context(), args[0], req)
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), h, func(w io.Writer) error { return printWebhook(w, withoutSecret(h)) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&url, "url", "", "the new URL")
	fl.StringSliceVar(&evs, "event", nil, "the new list of event types (repeat, or comma-separated)")
	fl.StringVar(&description, "description", "", "the new description (\"\" clears it)")
	_ = cmd.RegisterFlagCompletionFunc("event", completeEvents)
	noEnvFlags(fl)
	return cmd
}

func webhooksDeleteCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "delete WEBHOOK_ID",
		Short:             "Delete a webhook, its queued deliveries and its history",
		Example:           `  pancake-webhooks webhooks delete wh_01jd9x…`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeWebhookIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			if err := c.Webhooks.Delete(cmd.Context(), args[0]); err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), map[string]bool{"success": true}, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Deleted webhook %s.\n", args[0])
				return err
			})
		},
	}
}

func webhooksSetActiveCmd(f *apiFlags, on bool) *cobra.Command {
	use, short, example := "enable", "Enable a webhook (clears a disabled reason and the failure streak)", "  pancake-webhooks webhooks enable wh_01jd9x…"
	if !on {
		use, short, example = "disable", "Disable a webhook (its queued deliveries are cancelled, recorded as failed)", "  pancake-webhooks webhooks disable wh_01jd9x…"
	}
	return &cobra.Command{
		Use:               use + " WEBHOOK_ID",
		Short:             short,
		Example:           example,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeWebhookIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			h, err := c.Webhooks.SetActive(cmd.Context(), args[0], on)
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), h, func(w io.Writer) error { return printWebhook(w, withoutSecret(h)) })
		},
	}
}

func webhooksTestCmd(f *apiFlags) *cobra.Command {
	var event, data string
	cmd := &cobra.Command{
		Use:   "test WEBHOOK_ID --event EVENT [--data JSON]",
		Short: "Send a test event to a webhook now and show what it answered",
		Long: `Send a test event (its envelope says "test": true) to the webhook now, whether
it is active or not, and show the attempt. A receiver that fails is not an
error of the command: the status says "failed" and why.`,
		Example: `  pancake-webhooks webhooks test wh_01jd9x… --event order.created
  pancake-webhooks webhooks test wh_01jd9x… --event order.created --data '{"order_id": "ord_1", "total": 120000}'
  pancake-webhooks webhooks test wh_01jd9x… --event order.created --data @order.json --json | jq -r .status`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeWebhookIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var payload map[string]any
			if data != "" {
				var err error
				if payload, err = readData("data", data, cmd.InOrStdin()); err != nil {
					return err
				}
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			r, err := c.Webhooks.Test(cmd.Context(), args[0], pancake.WebhookEvent(event), payload)
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), r, func(w io.Writer) error { return printResult(w, r) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&event, "event", "", "the event type to send")
	fl.StringVar(&data, "data", "", "the event's data: a JSON object, @FILE, or - for stdin")
	_ = cmd.MarkFlagRequired("event")
	_ = cmd.RegisterFlagCompletionFunc("event", completeEvents)
	noEnvFlags(fl)
	return cmd
}

func webhooksRotateCmd(f *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-secret WEBHOOK_ID",
		Short: "Give a webhook a new signing secret and show it",
		Long: `Give the webhook a new signing secret and show it. The previous secret keeps
signing deliveries too for the server's overlap (24 hours by default), so the
receiver can switch to the new one without losing events.`,
		Example: `  pancake-webhooks webhooks rotate-secret wh_01jd9x…
  pancake-webhooks webhooks rotate-secret wh_01jd9x… --json | jq -r .secret_key`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeWebhookIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			r, err := c.Webhooks.RotateSecret(cmd.Context(), args[0])
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), r, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "New secret: %s\nThe previous secret keeps signing too for the server's overlap (24 hours by default).\n", r.SecretKey)
				return err
			})
		},
	}
}

func webhooksStatsCmd(f *apiFlags) *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "stats WEBHOOK_ID [--from YYYY-MM-DD] [--to YYYY-MM-DD]",
		Short: "Count a webhook's delivery attempts, per event and per hour",
		Long: `Count the delivery attempts made to the webhook between two days (UTC, both
included; default: the last 7 days), with their success rate, average
duration, and counts per event type and per hour.`,
		Example: `  pancake-webhooks webhooks stats wh_01jd9x…
  pancake-webhooks webhooks stats wh_01jd9x… --from 2026-11-01 --to 2026-11-30 --json`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeWebhookIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDate("from", from); err != nil {
				return err
			}
			if err := checkDate("to", to); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			s, err := c.Webhooks.GetStats(cmd.Context(), args[0], pancake.StatsParams{FromDate: from, ToDate: to})
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), s, func(w io.Writer) error { return printStats(w, args[0], s) })
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "first day, YYYY-MM-DD (UTC)")
	fl.StringVar(&to, "to", "", "last day, YYYY-MM-DD (UTC), included")
	noEnvFlags(fl)
	return cmd
}

func webhooksClearCmd(f *apiFlags) *cobra.Command {
	var before, status string
	cmd := &cobra.Command{
		Use:   "clear-history WEBHOOK_ID [--before YYYY-MM-DD] [--status success|failed]",
		Short: "Delete a webhook's finished deliveries",
		Long: `Delete the webhook's finished deliveries: all of them, or those created before
a day (00:00 UTC) and/or of one status. Queued deliveries are kept.`,
		Example: `  pancake-webhooks webhooks clear-history wh_01jd9x… --before 2026-11-01
  pancake-webhooks webhooks clear-history wh_01jd9x… --status failed`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: f.completeWebhookIDs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkDate("before", before); err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			r, err := c.Webhooks.ClearDeliveryHistory(cmd.Context(), args[0], pancake.ClearHistoryParams{BeforeDate: before, Status: status})
			if err != nil {
				return f.apiErr(err)
			}
			return f.print(cmd.OutOrStdout(), r, func(w io.Writer) error {
				_, err := fmt.Fprintf(w, "Deleted %s of %s.\n", plural(r.DeletedCount, "delivery", "deliveries"), args[0])
				return err
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&before, "before", "", "delete only those created before this day, YYYY-MM-DD (UTC)")
	fl.StringVar(&status, "status", "", "delete only those of this status: success or failed")
	_ = cmd.RegisterFlagCompletionFunc("status", completeWords(pancake.StatusSuccess, pancake.StatusFailed))
	noEnvFlags(fl)
	return cmd
}

// withoutSecret is h without its signing secret: the commands that change
// a webhook show what changed, and only get, create and rotate-secret
// (which say so) put the secret on the screen.
func withoutSecret(h *pancake.Webhook) *pancake.Webhook {
	c := *h
	c.SecretKey = ""
	return &c
}
