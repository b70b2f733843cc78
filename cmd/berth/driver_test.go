package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth/berth/internal/driver/kube"
)

func TestNewDriverSelection(t *testing.T) {
	t.Parallel()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: x}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	if _, _, err := newDriver(t.Context(), env(map[string]string{"BERTH_DRIVER": "nomad"}), "berth"); err == nil || !strings.Contains(err.Error(), "docker or kubernetes") {
		t.Errorf("unknown driver: %v", err)
	}
	if _, _, err := newDriver(t.Context(), env(map[string]string{"BERTH_DRIVER": "kubernetes", "KUBECONFIG": kc}), "berth"); err == nil || !strings.Contains(err.Error(), "BERTH_IMAGE") {
		t.Errorf("kubernetes without BERTH_IMAGE: %v", err)
	}
	d, dd, err := newDriver(t.Context(), env(map[string]string{"BERTH_DRIVER": "kubernetes", "KUBECONFIG": kc, "BERTH_IMAGE": "r/t:1", "BERTH_KUBE_NAMESPACE": "tenants"}), "berth")
	if err != nil {
		t.Fatalf("kubernetes: %v", err)
	}
	if k, ok := d.(*kube.Driver); !ok || dd != nil || k.Namespace() != "tenants" {
		t.Errorf("kubernetes driver = %T (docker %v)", d, dd)
	}
}
