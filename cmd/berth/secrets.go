package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/berth/berth/internal/secrets"
	"github.com/berth/berth/internal/server"
)

// securityConfig reads the API hardening settings from the environment.
func securityConfig(getenv func(string) string) (server.Security, error) {
	sec := server.Security{}
	var err error
	if sec.TokenRate, sec.TokenBurst, err = parseRate(getenv("BERTH_RATE_LIMIT")); err != nil {
		return sec, fmt.Errorf("BERTH_RATE_LIMIT: %w", err)
	}
	if sec.AddrRate, sec.AddrBurst, err = parseRate(getenv("BERTH_RATE_LIMIT_ADDR")); err != nil {
		return sec, fmt.Errorf("BERTH_RATE_LIMIT_ADDR: %w", err)
	}
	if v := getenv("BERTH_READ_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return sec, fmt.Errorf("BERTH_READ_TIMEOUT: %q must be a duration like 30s", v)
		}
		sec.ReadTimeout = d
	}
	for _, o := range strings.Split(getenv("BERTH_CORS_ORIGINS"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || o == "*" {
				return sec, fmt.Errorf("BERTH_CORS_ORIGINS: %q must be an origin like https://app.example.com", o)
			}
			sec.CORSOrigins = append(sec.CORSOrigins, o)
		}
	}
	return sec, nil
}

// parseRate reads "rate[,burst]" in requests per second; "off" disables;
// empty is the default (0).
func parseRate(s string) (float64, int, error) {
	if s == "" {
		return 0, 0, nil
	}
	if s == "off" {
		return -1, 0, nil
	}
	r, b, _ := strings.Cut(s, ",")
	rate, err := strconv.ParseFloat(r, 64)
	if err != nil || rate <= 0 {
		return 0, 0, fmt.Errorf("%q must be requests per second[,burst], e.g. 20,40, or off", s)
	}
	burst := 0
	if b != "" {
		if burst, err = strconv.Atoi(b); err != nil || burst < 1 {
			return 0, 0, fmt.Errorf("%q: burst must be a positive integer", s)
		}
	}
	return rate, burst, nil
}

const secretsUsage = `Usage: berth secrets rotate|genkey [--data-dir DIR]

  rotate   re-encrypt every stored secret under a new master key.
           With a key file (<data dir>/master.key or BERTH_MASTER_KEY_FILE):
           a new key is generated, everything is re-sealed with it, and the
           file then holds only the new key. A running berth serve picks the
           new key up by itself.
           With BERTH_MASTER_KEY: set it to "NEW,OLD" (NEW from
           "berth secrets genkey"), run rotate, then set it to "NEW" and
           restart berth serve.
  genkey   print a new random master key (base64) for BERTH_MASTER_KEY.
`

func secretsCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "rotate" && args[0] != "genkey") {
		fmt.Fprint(stderr, secretsUsage)
		return errUsage
	}
	if args[0] == "genkey" {
		fmt.Fprintln(stdout, secrets.EncodeKey(secrets.NewKey()))
		return nil
	}
	fs := newFlags("secrets rotate", "Re-encrypt every stored secret under a new master key.", stderr)
	dataDir := fs.String("data-dir", envOr(getenv, "BERTH_DATA_DIR", "./data"), "directory of the database and master.key (BERTH_DATA_DIR)")
	if err := parse(fs, args[1:]); err != nil {
		if err == errHelp {
			return nil
		}
		return err
	}
	store, _, closeStore, err := openStore(ctx, getenv, *dataDir)
	if err != nil {
		return err
	}
	defer closeStore()

	kr, src, err := secrets.Load(getenv, *dataDir)
	if err != nil {
		return err
	}
	var fileKeys [][]byte
	if src.Env == "" {
		// New key first, old ones kept until everything is re-sealed.
		old, err := secrets.ReadKeyFile(src.File)
		if err != nil {
			return err
		}
		nk := secrets.NewKey()
		fileKeys = append([][]byte{nk}, old...)
		if err := secrets.WriteKeyFile(src.File, fileKeys, false); err != nil {
			return err
		}
		if kr, err = secrets.NewKeyring(fileKeys...); err != nil {
			return err
		}
	}
	v, err := secrets.NewVault(kr, store)
	if err != nil {
		return err
	}
	n, err := v.Rotate(ctx)
	if err != nil {
		return fmt.Errorf("rotation stopped after %d secret(s), keys kept (run it again): %w", n, err)
	}
	nc, err := secrets.SealingStore{Store: store, Keyring: kr}.RotateContainerSecrets(ctx)
	if err != nil {
		return fmt.Errorf("rotation of containers' environment stopped after %d container(s), keys kept (run it again): %w", nc, err)
	}
	if src.Env == "" {
		if err := secrets.WriteKeyFile(src.File, fileKeys[:1], false); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "re-encrypted %d secret(s) and the environment of %d container(s) under key %s; %s now holds only that key\n", n, nc, kr.CurrentID(), src.File)
		return nil
	}
	fmt.Fprintf(stdout, "re-encrypted %d secret(s) and the environment of %d container(s) under key %s (the first of BERTH_MASTER_KEY); drop the other keys from BERTH_MASTER_KEY and restart berth serve\n", n, nc, kr.CurrentID())
	return nil
}
