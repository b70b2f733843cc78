package kube

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestObjectNameAndLabelValue(t *testing.T) {
	t.Parallel()
	for _, name := range []string{
		"berth-alice",
		"berth-Alice_B",
		"berth-" + strings.Repeat("x", 64) + "-3",
		"berth-" + strings.Repeat("Z_", 32),
		"b-9",
	} {
		obj := objectName(name)
		if errs := validation.IsDNS1035Label(obj); len(errs) > 0 || len(obj) > 47 {
			t.Errorf("objectName(%q) = %q (len %d): %v", name, obj, len(obj), errs)
		}
		if errs := validation.IsDNS1123Label(podName(obj)); len(errs) > 0 {
			t.Errorf("pod name %q: %v", podName(obj), errs)
		}
		if errs := validation.IsDNS1123Subdomain(claimName(obj)); len(errs) > 0 {
			t.Errorf("claim name %q: %v", claimName(obj), errs)
		}
		if lv := labelValue(name); len(validation.IsValidLabelValue(lv)) > 0 {
			t.Errorf("labelValue(%q) = %q is not a label value", name, lv)
		}
	}
	if objectName("berth-alice") != "berth-alice" || labelValue("berth-alice") != "berth-alice" {
		t.Errorf("names that fit must be kept verbatim")
	}
	if objectName("berth-Alice") == objectName("berth-alice") || labelValue("berth-"+strings.Repeat("x", 70)) == labelValue("berth-"+strings.Repeat("x", 71)) {
		t.Errorf("distinct names must map to distinct objects and label values")
	}
}
