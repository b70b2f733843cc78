package kube_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/driver/kube"
)

// chartDir is deploy/helm/berth of this module.
func chartDir(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "deploy", "helm", "berth")
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		t.Fatalf("chart: %v", err)
	}
	return dir
}

// helmBin returns BERTH_HELM (scripts/k8s-testenv.sh builds it), skipping
// or failing (BERTH_TEST_KUBE=1) without it.
func helmBin(t *testing.T) string {
	t.Helper()
	needKube(t)
	h := os.Getenv("BERTH_HELM")
	if h == "" {
		if p, err := exec.LookPath("helm"); err == nil {
			h = p
		}
	}
	if h == "" {
		if os.Getenv("BERTH_TEST_KUBE") == "1" {
			t.Fatal("BERTH_TEST_KUBE=1 but no helm (BERTH_HELM; scripts/k8s-testenv.sh build makes one)")
		}
		t.Skip("no helm binary (set BERTH_HELM)")
	}
	return h
}

func helmTemplate(t *testing.T, release string, set ...string) ([]byte, error) {
	args := []string{"template", release, chartDir(t), "--namespace", ns}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(t.Context(), helmBin(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		return nil, errors.New(strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

func decodeAll(t *testing.T, manifest []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if err == io.EOF {
				return objs
			}
			t.Fatalf("decode rendered chart: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// TestHelmChart renders deploy/helm/berth with helm template, applies every
// object to the test API server (server-side apply), and then acts as the
// chart's ServiceAccount: the kube driver must be able to run a tenant with
// exactly the RBAC the chart grants.
func TestHelmChart(t *testing.T) {
	t.Parallel()
	ctx := ctxFor(t)
	const release = "hc"
	if _, err := helmTemplate(t, release, "adminToken=0123456789abcdef0123"); err == nil || !strings.Contains(err.Error(), "database.url") {
		t.Errorf("3 replicas without PostgreSQL/Redis rendered (err %v), want a refusal naming database.url", err)
	}
	manifest, err := helmTemplate(t, release,
		"adminToken=0123456789abcdef0123",
		"database.url=postgres://berth:pw@postgres:5432/berth",
		"redis.url=redis://redis:6379/0",
		"tenants.namespace="+ns,
		"ingress.enabled=true",
		"replicaCount=3")
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	objs := decodeAll(t, manifest)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	for _, k := range []string{"Deployment", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Service", "Ingress", "ConfigMap", "Secret"} {
		if kinds[k] == 0 {
			t.Errorf("rendered chart has no %s (kinds: %v)", k, kinds)
		}
	}

	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == "namespace" {
			if o.GetNamespace() != ns {
				t.Errorf("%s %s in namespace %q, want %q", gvk.Kind, o.GetName(), o.GetNamespace(), ns)
			}
			ri = dyn.Resource(m.Resource).Namespace(ns)
		} else {
			t.Cleanup(func() {
				_ = dyn.Resource(m.Resource).Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
			})
		}
		body, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "berth-helm-test", Force: &force}); err != nil {
			t.Errorf("apply %s %s: %v", gvk.Kind, o.GetName(), err)
		}
	}
	if t.Failed() {
		return
	}

	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, release+"-berth", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment: %v", err)
	}
	checkDeployment(t, dep)

	// Act as the chart's ServiceAccount: its RBAC must suffice for the driver.
	sa := rest.CopyConfig(cfg)
	sa.Impersonate = rest.ImpersonationConfig{UserName: "system:serviceaccount:" + ns + ":" + release + "-berth"}
	inst := "bt-h-" + randHex(3)
	d, err := kube.New(kube.Options{Instance: inst, Version: "test", Namespace: ns, Config: sa, StartTimeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := spec(inst, "rbac")
	if _, err := d.Host(ctx); err != nil {
		t.Errorf("Host as the chart's ServiceAccount: %v", err)
	}
	if _, err := d.Create(ctx, s); err != nil {
		t.Fatalf("Create as the chart's ServiceAccount: %v", err)
	}
	if err := d.Start(ctx, s.Name); err != nil {
		t.Errorf("Start as the chart's ServiceAccount: %v", err)
	}
	if err := d.Update(ctx, s.Name, berth.Limits{MemoryBytes: 300 << 20, CPUs: 1, PidsLimit: 128}); err != nil {
		t.Errorf("Update as the chart's ServiceAccount: %v", err)
	}
	if _, err := d.Logs(ctx, s.Name, 5); err != nil && !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("Logs as the chart's ServiceAccount: %v", err)
	}
	if err := d.Stop(ctx, s.Name, time.Second); err != nil {
		t.Errorf("Stop as the chart's ServiceAccount: %v", err)
	}
	if err := d.Remove(ctx, s.Name, true); err != nil {
		t.Errorf("Remove as the chart's ServiceAccount: %v", err)
	}
	// ...and nothing beyond its namespace.
	other := rest.CopyConfig(sa)
	od, _ := kube.New(kube.Options{Instance: inst, Namespace: "kube-system", Config: other})
	if _, err := od.List(ctx); !errors.Is(err, berth.ErrUnavailable) || !strings.Contains(err.Error(), "RBAC") {
		t.Errorf("List in kube-system as the chart's ServiceAccount = %v, want refused by RBAC", err)
	}
}

func checkDeployment(t *testing.T, dep *appsv1.Deployment) {
	t.Helper()
	if r := dep.Spec.Replicas; r == nil || *r != 3 {
		t.Errorf("replicas = %v, want 3", r)
	}
	if dep.Spec.Template.Labels["app.kubernetes.io/component"] != "control-plane" || dep.Spec.Template.Labels["app.kubernetes.io/name"] != "berth" {
		t.Errorf("pod labels %v do not match the driver's NetworkPolicy peer", dep.Spec.Template.Labels)
	}
	c := dep.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	fromSecret := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			fromSecret[e.Name] = true
		}
	}
	for k, v := range map[string]string{"BERTH_DRIVER": "kubernetes", "BERTH_KUBE_NAMESPACE": ns, "BERTH_PLANS_FILE": "/etc/berth/plans.yaml"} {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	for _, k := range []string{"BERTH_DATABASE_URL", "BERTH_REDIS_URL", "BERTH_ADMIN_TOKEN"} {
		if !fromSecret[k] {
			t.Errorf("env %s not from the Secret", k)
		}
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.MountPath == "/etc/berth"
	}
	if !mounted {
		t.Errorf("plans ConfigMap not mounted at /etc/berth")
	}
}
