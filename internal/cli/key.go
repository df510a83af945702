package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/cortexrt/cortex/internal/errdefs"
	"github.com/cortexrt/cortex/internal/oci"
)

func keyCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key",
		Short: "Manage bundle signing keys",
	}
	var force bool
	gen := &cobra.Command{
		Use:   "generate [--force] FILE",
		Short: "Make an ed25519 key pair: FILE (private, 0600) and FILE.pub",
		Long: `Make an ed25519 signing key pair for cortex push --sign. FILE gets the private key
(PKCS#8 PEM, mode 0600) and FILE.pub the public key (PKIX PEM) that cortex run
--verify-key takes. OpenSSL makes the same files:
  openssl genpkey -algorithm ed25519 -out FILE && openssl pkey -in FILE -pubout -out FILE.pub`,
		Args: exactArgs(1, "FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			priv, pub, err := oci.GenerateKey()
			if err != nil {
				return err
			}
			path := args[0]
			flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
			if force {
				flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
			}
			if err := writeKeyFile(path, priv, 0o600, flags); err != nil {
				return err
			}
			if err := writeKeyFile(path+".pub", pub, 0o644, flags); err != nil {
				os.Remove(path)
				return err
			}
			k, _ := oci.ParsePublicKey(path+".pub", pub)
			fmt.Fprintf(e.stdout, "%s %s\n", path+".pub", oci.KeyID(k))
			return nil
		},
	}
	gen.Flags().BoolVar(&force, "force", false, "overwrite existing files")
	cmd.AddCommand(gen)
	return cmd
}

func writeKeyFile(path string, data []byte, mode os.FileMode, flags int) error {
	f, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, os.ErrExist) {
		return errdefs.WithHint(errdefs.New(errdefs.AlreadyExists, "%s already exists", path), "choose another name, or pass --force to replace it")
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil { // O_TRUNC keeps the old mode
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
