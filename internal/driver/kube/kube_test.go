package kube_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/berth/berth"
	"github.com/berth/berth/internal/driver/drivertest"
	"github.com/berth/berth/internal/driver/kube"
)

// The tests run against a real kube-apiserver (with etcd, kube-scheduler,
// kube-controller-manager and kwok's fake nodes): `make test-kube`, or
// eval "$(scripts/k8s-testenv.sh up)" and BERTH_TEST_KUBECONFIG=$KUBECONFIG go test.
// Without BERTH_TEST_KUBECONFIG they
// skip, or fail when BERTH_TEST_KUBE=1.
var (
	envErr error        // why the tests cannot run
	cfg    *rest.Config // the test cluster
	cs     kubernetes.Interface
	ns     string // a fresh namespace for this run
)

const testImage = "registry.invalid/berth/tenant:test" // never pulled: kwok runs nothing

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Getenv("BERTH_TEST_KUBECONFIG") == "" {
		envErr = errors.New("BERTH_TEST_KUBECONFIG is not set (make test-kube starts a test API server; KUBECONFIG is never used, so tests cannot touch a real cluster)")
		return m.Run()
	}
	var err error
	cfg, err = clientcmd.BuildConfigFromFlags("", os.Getenv("BERTH_TEST_KUBECONFIG"))
	if err == nil {
		cs, err = kubernetes.NewForConfig(cfg)
	}
	if err != nil {
		envErr = err
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns = "berth-test-" + randHex(3)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		envErr = fmt.Errorf("create namespace: %w", err)
		return m.Run()
	}
	defer func() {
		c, cc := context.WithTimeout(context.Background(), 30*time.Second)
		defer cc()
		_ = cs.CoreV1().Namespaces().Delete(c, ns, metav1.DeleteOptions{})
		_ = cs.CoreV1().PersistentVolumes().DeleteCollection(c, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "berth-test=" + ns})
	}()
	// Pods need the namespace's default ServiceAccount (made by the
	// controller manager; made here if it is not running).
	if err := ensureDefaultSA(ctx); err != nil {
		envErr = err
		return m.Run()
	}
	pctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { provision(pctx) })
	defer func() { stop(); wg.Wait() }()
	return m.Run()
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func ensureDefaultSA(ctx context.Context) error {
	for i := 0; i < 50; i++ {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create default service account: %w", err)
	}
	return nil
}

// provision stands in for a storage provisioner, which the test cluster
// lacks: it pre-binds a hostPath PersistentVolume to every pending claim of
// the namespace, and kube-controller-manager's PV controller binds them, so
// that the scheduler can place the pods (kwok makes them Running).
func provision(ctx context.Context) {
	done := map[string]bool{}
	for ctx.Err() == nil {
		list, err := cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, c := range list.Items {
				if c.Spec.VolumeName != "" || done[string(c.UID)] {
					continue
				}
				size := c.Spec.Resources.Requests[corev1.ResourceStorage]
				pv := &corev1.PersistentVolume{
					ObjectMeta: metav1.ObjectMeta{Name: "pv-" + string(c.UID), Labels: map[string]string{"berth-test": ns}},
					Spec: corev1.PersistentVolumeSpec{
						Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
						AccessModes:                   c.Spec.AccessModes,
						PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
						ClaimRef:                      &corev1.ObjectReference{Namespace: ns, Name: c.Name, UID: c.UID},
						PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/tmp/berth-test-pv/" + string(c.UID)}},
					},
				}
				if c.Spec.StorageClassName != nil {
					pv.Spec.StorageClassName = *c.Spec.StorageClassName
				}
				if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err == nil || apierrors.IsAlreadyExists(err) {
					done[string(c.UID)] = true
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// needKube skips, or fails when BERTH_TEST_KUBE=1, if there is no cluster.
func needKube(t *testing.T) {
	t.Helper()
	if envErr == nil {
		return
	}
	if os.Getenv("BERTH_TEST_KUBE") == "1" {
		t.Fatalf("BERTH_TEST_KUBE=1 but the test Kubernetes API server is not usable: %v", envErr)
	}
	t.Skipf("no test Kubernetes API server (make test-kube sets BERTH_TEST_KUBE=1 to fail instead): %v", envErr)
}

func newDriver(t *testing.T) (*kube.Driver, string) {
	t.Helper()
	needKube(t)
	inst := "bt-k-" + randHex(3)
	d, err := kube.New(kube.Options{Instance: inst, Version: "test", Namespace: ns, Config: cfg, StartTimeout: 45 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.RemoveAll(ctx); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return d, inst
}

// TestConformance runs the driver conformance suite. kwok's pods run no
// process, so the suite skips its /health, Logs and Stats checks
// (FakeWorkloads); TestLogsAndStatsWithoutKubelet covers what can be.
func TestConformance(t *testing.T) {
	needKube(t)
	drivertest.Run(t, func(t *testing.T) (berth.Driver, drivertest.Env) {
		d, inst := newDriver(t)
		return d, drivertest.Env{
			Instance:      inst,
			Image:         testImage,
			FakeWorkloads: true,
			SharedNetwork: true, // one namespace; tenants are kept apart by NetworkPolicy
			AgentAddr: func(spec berth.ContainerSpec) string {
				return fmt.Sprintf("%s.%s.svc:%d", spec.Name, ns, berth.AgentPort)
			},
		}
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func spec(inst, user string) berth.ContainerSpec {
	return berth.ContainerSpec{
		Name:   inst + "-" + user,
		UserID: user,
		Plan:   "pro",
		Image:  testImage,
		Limits: berth.Limits{MemoryBytes: 256 << 20, CPUs: 1.5, PidsLimit: 256},
		Env:    map[string]string{"BERTH_AGENT_SECRET": "s3cret", "OPENAI_API_KEY": "sk-test"},
		Labels: map[string]string{"test.extra": "yes"},
	}
}

// TestObjectsAsStored checks what the API server stored for one tenant:
// security context, resources, labels, claim, Service, NetworkPolicy, Secret.
func TestObjectsAsStored(t *testing.T) {
	t.Parallel()
	d, inst := newDriver(t)
	ctx := ctxFor(t)
	s := spec(inst, "objs")
	if _, err := d.Create(ctx, s); err != nil {
		t.Fatalf("Create: %v", err)
	}
	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get statefulset: %v", err)
	}
	wantLabels := map[string]string{
		berth.LabelInstance: inst, berth.LabelUser: "objs", berth.LabelPlan: "pro",
		berth.LabelVersion: "test", berth.LabelName: s.Name, "test.extra": "yes",
	}
	for k, v := range wantLabels {
		if sts.Labels[k] != v {
			t.Errorf("statefulset label %s = %q, want %q", k, sts.Labels[k], v)
		}
		if sts.Spec.Template.Labels[k] != v {
			t.Errorf("pod template label %s = %q, want %q", k, sts.Spec.Template.Labels[k], v)
		}
	}
	if r := sts.Spec.Replicas; r == nil || *r != 0 {
		t.Errorf("replicas = %v, want 0 until Start", r)
	}
	ps := sts.Spec.Template.Spec
	if len(ps.Containers) != 1 {
		t.Fatalf("containers = %d, want 1", len(ps.Containers))
	}
	c := ps.Containers[0]
	psc, sc := ps.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || sc == nil:
		t.Fatalf("security contexts missing: pod %v container %v", psc, sc)
	case psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 65534:
		t.Errorf("pod security context = %+v, want runAsNonRoot, runAsUser 65534", psc)
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("pod seccomp = %+v, want RuntimeDefault", psc.SeccompProfile)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("readOnlyRootFilesystem = %v, want true", sc.ReadOnlyRootFilesystem)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("allowPrivilegeEscalation = %v, want false", sc.AllowPrivilegeEscalation)
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities = %+v, want drop ALL only", sc.Capabilities)
	case sc.RunAsUser == nil || *sc.RunAsUser != 65534 || sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("container security context = %+v", sc)
	case ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken:
		t.Errorf("automountServiceAccountToken = %v, want false", ps.AutomountServiceAccountToken)
	}
	cpu, mem := resource.MustParse("1500m"), resource.MustParse("256Mi")
	for what, rl := range map[string]corev1.ResourceList{"limits": c.Resources.Limits, "requests": c.Resources.Requests} {
		if q := rl[corev1.ResourceCPU]; q.Cmp(cpu) != 0 {
			t.Errorf("cpu %s = %s, want %s", what, q.String(), cpu.String())
		}
		if q := rl[corev1.ResourceMemory]; q.Cmp(mem) != 0 {
			t.Errorf("memory %s = %s, want %s", what, q.String(), mem.String())
		}
	}
	if sts.Annotations["berth.io/pids-limit"] != "256" {
		t.Errorf("pids annotation = %q, want 256", sts.Annotations["berth.io/pids-limit"])
	}
	if len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != s.Name+"-env" || len(c.Env) != 0 {
		t.Errorf("envFrom = %+v env = %+v, want only the Secret %s-env", c.EnvFrom, c.Env, s.Name)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		mounted = mounted || m.Name == "data" && m.MountPath == "/data"
	}
	if !mounted || len(sts.Spec.VolumeClaimTemplates) != 1 || sts.Spec.VolumeClaimTemplates[0].Name != "data" {
		t.Errorf("mounts %+v, claim templates %d: want data at /data from a claim template", c.VolumeMounts, len(sts.Spec.VolumeClaimTemplates))
	}

	pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-"+s.Name+"-0", metav1.GetOptions{})
	if err != nil {
		t.Errorf("claim: %v", err)
	} else if pvc.Labels[berth.LabelInstance] != inst || pvc.Spec.AccessModes[0] != corev1.ReadWriteOnce {
		t.Errorf("claim = %+v", pvc.ObjectMeta)
	}

	sec, err := cs.CoreV1().Secrets(ns).Get(ctx, s.Name+"-env", metav1.GetOptions{})
	if err != nil {
		t.Errorf("secret: %v", err)
	} else if string(sec.Data["OPENAI_API_KEY"]) != "sk-test" || string(sec.Data["BERTH_AGENT_SECRET"]) != "s3cret" || sec.Labels[berth.LabelInstance] != inst {
		t.Errorf("secret data keys %d, labels %v", len(sec.Data), sec.Labels)
	}

	svc, err := cs.CoreV1().Services(ns).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		t.Errorf("service: %v", err)
	} else if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9000 || svc.Spec.Selector[berth.LabelName] != s.Name || svc.Spec.Selector[berth.LabelInstance] != inst {
		t.Errorf("service spec = %+v", svc.Spec)
	}

	np, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, s.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("network policy: %v", err)
	}
	if np.Spec.PodSelector.MatchLabels[berth.LabelName] != s.Name || len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != "Ingress" {
		t.Errorf("network policy selects %v, types %v", np.Spec.PodSelector.MatchLabels, np.Spec.PolicyTypes)
	}
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].From) != 1 || np.Spec.Ingress[0].From[0].PodSelector == nil ||
		np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] != "control-plane" ||
		np.Spec.Ingress[0].From[0].NamespaceSelector != nil || np.Spec.Ingress[0].From[0].IPBlock != nil {
		t.Errorf("network policy ingress = %+v, want only the control plane's pods", np.Spec.Ingress)
	}
	for _, o := range []metav1.ObjectMeta{sec.ObjectMeta, svc.ObjectMeta, np.ObjectMeta} {
		if len(o.OwnerReferences) != 1 || o.OwnerReferences[0].UID != sts.UID {
			t.Errorf("%s owner = %+v, want the statefulset", o.Name, o.OwnerReferences)
		}
	}

	// Running: the pod as the StatefulSet controller made it.
	if err := d.Start(ctx, s.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, s.Name+"-0", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("pod: %v", err)
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase != corev1.PodRunning || pod.Labels[berth.LabelUser] != "objs" {
		t.Errorf("pod node %q phase %s labels %v, want scheduled, Running, labelled", pod.Spec.NodeName, pod.Status.Phase, pod.Labels)
	}
	if pod.Spec.Containers[0].SecurityContext == nil || pod.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem == nil {
		t.Errorf("pod lost the security context")
	}
	in, err := d.Inspect(ctx, s.Name)
	if err != nil || !in.Running || in.State != "running" || in.AgentAddr != s.Name+"."+ns+".svc:9000" || in.Volume != "data-"+s.Name+"-0" {
		t.Errorf("Inspect = %+v, %v", in, err)
	}

	// Update patches the template; kwok's node reports no container
	// resources (as a kubelet without in-place resize), so the API server
	// refuses the resize and the driver re-creates the pod.
	oldUID := pod.UID
	nl := berth.Limits{MemoryBytes: 512 << 20, CPUs: 2, PidsLimit: 512}
	if err := d.Update(ctx, s.Name, nl); err != nil {
		t.Fatalf("Update: %v", err)
	}
	sts, _ = cs.AppsV1().StatefulSets(ns).Get(ctx, s.Name, metav1.GetOptions{})
	if q := sts.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; q.Value() != 512<<20 {
		t.Errorf("template memory limit after Update = %s", q.String())
	}
	pod, _ = cs.CoreV1().Pods(ns).Get(ctx, s.Name+"-0", metav1.GetOptions{})
	if q := pod.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU]; q.MilliValue() != 2000 {
		t.Errorf("pod cpu limit after Update = %s, want 2", q.String())
	}
	if pod.UID == oldUID {
		t.Errorf("pod not re-created on a node without resize support")
	}
	if in, _ := d.Inspect(ctx, s.Name); in.Limits.MemoryBytes != 512<<20 || in.Limits.CPUs != 2 || in.Limits.PidsLimit != 512 || !in.Running {
		t.Errorf("Inspect after Update = %+v", in)
	}

	// Remove cleans up everything, the claim included.
	if err := d.Remove(ctx, s.Name, true); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	gone := func(what string, err error) {
		if !apierrors.IsNotFound(err) {
			t.Errorf("%s after Remove: %v, want NotFound", what, err)
		}
	}
	_, err = cs.AppsV1().StatefulSets(ns).Get(ctx, s.Name, metav1.GetOptions{})
	gone("statefulset", err)
	_, err = cs.CoreV1().Secrets(ns).Get(ctx, s.Name+"-env", metav1.GetOptions{})
	gone("secret", err)
	_, err = cs.CoreV1().Services(ns).Get(ctx, s.Name, metav1.GetOptions{})
	gone("service", err)
	_, err = cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, s.Name, metav1.GetOptions{})
	gone("network policy", err)
	if c, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-"+s.Name+"-0", metav1.GetOptions{}); err == nil && c.DeletionTimestamp == nil {
		t.Errorf("claim still there after Remove(removeVolume)")
	}
}

// TestUpdateInPlace: on a node whose kubelet supports in-place resize (its
// container statuses carry resources; here written by the test, as kwok does
// not), Update resizes the running pod through pods/resize: same pod, new
// resources.
func TestUpdateInPlace(t *testing.T) {
	t.Parallel()
	d, inst := newDriver(t)
	ctx := ctxFor(t)
	s := spec(inst, "resize")
	if _, err := d.Create(ctx, s); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := d.Start(ctx, s.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pod, err := cs.CoreV1().Pods(ns).Get(ctx, s.Name+"-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range pod.Status.ContainerStatuses {
		r := pod.Spec.Containers[0].Resources
		pod.Status.ContainerStatuses[i].Resources = &r
	}
	if pod, err = cs.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("report container resources: %v", err)
	}
	nl := berth.Limits{MemoryBytes: 384 << 20, CPUs: 1, PidsLimit: 300}
	if err := d.Update(ctx, s.Name, nl); err != nil {
		t.Fatalf("Update: %v", err)
	}
	after, err := cs.CoreV1().Pods(ns).Get(ctx, s.Name+"-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID != pod.UID {
		t.Errorf("pod re-created, want resized in place")
	}
	if q := after.Spec.Containers[0].Resources.Limits[corev1.ResourceMemory]; q.Value() != 384<<20 {
		t.Errorf("pod memory limit after resize = %s, want 384Mi", q.String())
	}
	if in, err := d.Inspect(ctx, s.Name); err != nil || !in.Running || in.Limits.MemoryBytes != 384<<20 || in.Limits.CPUs != 1 || in.Limits.PidsLimit != 300 {
		t.Errorf("Inspect after resize = %+v, %v", in, err)
	}
}

// TestLongAndOddNames: user ids may hold uppercase letters and underscores
// and be 64 characters long; object names and label values must not.
func TestLongAndOddNames(t *testing.T) {
	t.Parallel()
	d, inst := newDriver(t)
	ctx := ctxFor(t)
	s := spec(inst, "User_"+strings.Repeat("x", 59))
	in, err := d.Create(ctx, s)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if in.Name != s.Name || in.UserID != s.UserID {
		t.Errorf("Create = name %q user %q, want %q %q", in.Name, in.UserID, s.Name, s.UserID)
	}
	if got := d.AgentAddrOf(s.Name); got != in.AgentAddr || !strings.HasSuffix(got, "."+ns+".svc:9000") {
		t.Errorf("AgentAddrOf = %q, Inspect's AgentAddr %q", got, in.AgentAddr)
	}
	list, err := d.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != s.Name {
		t.Errorf("List = %v, %v", list, err)
	}
	if err := d.Start(ctx, s.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := d.Remove(ctx, s.Name, true); err != nil {
		t.Fatalf("Remove: %v", err)
	}
}

// TestLogsAndStatsWithoutKubelet: kwok's nodes have no kubelet and the test
// cluster no metrics-server; both answer promptly with ErrUnavailable.
func TestLogsAndStatsWithoutKubelet(t *testing.T) {
	t.Parallel()
	d, inst := newDriver(t)
	ctx := ctxFor(t)
	s := spec(inst, "logs")
	if _, err := d.Create(ctx, s); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if logs, err := d.Logs(ctx, s.Name, 10); err != nil || logs != "" {
		t.Errorf("Logs of a container never started = %q, %v; want empty", logs, err)
	}
	if err := d.Start(ctx, s.Name); err != nil {
		t.Fatalf("Start: %v", err)
	}
	// No kubelet behind kwok's node: the API server cannot fetch logs. The
	// driver must answer promptly, with ErrUnavailable (or nothing).
	start := time.Now()
	_, err := d.Logs(ctx, s.Name, 10)
	if err != nil && !errors.Is(err, berth.ErrUnavailable) || time.Since(start) > 15*time.Second {
		t.Errorf("Logs on a kwok node = %v after %v, want ErrUnavailable (or empty) promptly", err, time.Since(start))
	}
	t.Logf("Logs on a kwok node: %v (%v)", err, time.Since(start).Round(time.Millisecond))
	u, err := d.Stats(ctx, s.Name)
	if !errors.Is(err, berth.ErrUnavailable) || u.MemoryLimitBytes != s.Limits.MemoryBytes || u.Time.IsZero() {
		t.Errorf("Stats without metrics API = %+v, %v; want ErrUnavailable with the limit", u, err)
	}
}

// TestUnavailable: a driver whose API server does not answer reports
// ErrUnavailable, for Ping and for every call.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	needKube(t)
	down := rest.CopyConfig(cfg)
	down.Host = "https://127.0.0.1:1" // nothing listens there
	d, err := kube.New(kube.Options{Instance: "bt-down", Namespace: ns, Config: down})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	if err := d.Ping(ctx); !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("Ping = %v, want ErrUnavailable", err)
	}
	if _, err := d.Inspect(ctx, "bt-down-x"); !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("Inspect = %v, want ErrUnavailable", err)
	}
	if _, err := d.List(ctx); !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("List = %v, want ErrUnavailable", err)
	}
	if _, err := d.Create(ctx, spec("bt-down", "x")); !errors.Is(err, berth.ErrUnavailable) {
		t.Errorf("Create = %v, want ErrUnavailable", err)
	}
}

// TestForeignObjectsInvisible: an object of the same name without this
// instance's label is NotFound to the driver and left alone.
func TestForeignObjectsInvisible(t *testing.T) {
	t.Parallel()
	d, inst := newDriver(t)
	ctx := ctxFor(t)
	s := spec(inst, "foreign")
	// A claim of the same name belonging to someone else blocks Create.
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "data-" + s.Name + "-0", Labels: map[string]string{berth.LabelInstance: "someone-else"}},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}},
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().PersistentVolumeClaims(ns).Delete(context.Background(), pvc.Name, metav1.DeleteOptions{})
	})
	if _, err := d.Create(ctx, s); !errors.Is(err, berth.ErrConflict) {
		t.Errorf("Create over another instance's claim = %v, want ErrConflict", err)
	}
	if err := d.Remove(ctx, s.Name, true); err != nil {
		t.Errorf("Remove = %v", err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, pvc.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("another instance's claim was touched: %v", err)
	}
}

// TestConcurrentCreateSameName: one Create wins, the others get
// ErrConflict, and the winner keeps its claim.
func TestConcurrentCreateSameName(t *testing.T) {
	t.Parallel()
	d, inst := newDriver(t)
	ctx := ctxFor(t)
	s := spec(inst, "race")
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { _, errs[i] = d.Create(ctx, s) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, berth.ErrConflict):
			t.Errorf("losing Create = %v, want ErrConflict", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d Creates succeeded, want 1 (%v)", ok, errs)
	}
	if c, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-"+s.Name+"-0", metav1.GetOptions{}); err != nil || c.DeletionTimestamp != nil {
		t.Errorf("claim after the race: %v", err)
	}
}
