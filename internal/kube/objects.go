package kube

// The Kubernetes objects Cortex renders, as the subset of the API it uses.
// Field names and JSON tags follow k8s.io/api exactly (the e2e test applies
// them with strict field validation, so a misspelt field is an error
// there); the package does not import k8s.io/api, which would add ~8 MB to
// the cortex binary (measured: see docs/cluster.md).

// Object is one rendered object.
type Object interface {
	GVK() GVK
	Meta() *ObjectMeta
}

// GVK names an object's API group, version and kind, and the resource
// (plural) it is served under.
type GVK struct {
	Group, Version, Kind, Resource string
	Namespaced                     bool
}

// APIVersion is group/version ("v1" for the core group).
func (g GVK) APIVersion() string {
	if g.Group == "" {
		return g.Version
	}
	return g.Group + "/" + g.Version
}

var (
	gvkNamespace      = GVK{"", "v1", "Namespace", "namespaces", false}
	gvkServiceAccount = GVK{"", "v1", "ServiceAccount", "serviceaccounts", true}
	gvkConfigMap      = GVK{"", "v1", "ConfigMap", "configmaps", true}
	gvkService        = GVK{"", "v1", "Service", "services", true}
	gvkSecret         = GVK{"", "v1", "Secret", "secrets", true}
	gvkPVC            = GVK{"", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true}
	gvkDeployment     = GVK{"apps", "v1", "Deployment", "deployments", true}
	gvkJob            = GVK{"batch", "v1", "Job", "jobs", true}
	gvkNetworkPolicy  = GVK{"networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true}
)

// TypeMeta is apiVersion and kind.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// ObjectMeta is the metadata Cortex sets.
type ObjectMeta struct {
	Name        string            `json:"name,omitempty"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Namespace is a v1 Namespace.
type Namespace struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
}

// ServiceAccount is a v1 ServiceAccount.
type ServiceAccount struct {
	TypeMeta                     `json:",inline"`
	Metadata                     ObjectMeta `json:"metadata"`
	AutomountServiceAccountToken *bool      `json:"automountServiceAccountToken,omitempty"`
}

// ConfigMap is a v1 ConfigMap.
type ConfigMap struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta        `json:"metadata"`
	Data     map[string]string `json:"data,omitempty"`
}

// Secret is a v1 Secret. Render never emits one; deploy creates the
// bus token and LLM token Secrets in the cluster, never on disk.
type Secret struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta        `json:"metadata"`
	Type     string            `json:"type,omitempty"`
	Data     map[string][]byte `json:"data,omitempty"`
}

func (o *Secret) GVK() GVK          { return gvkSecret }
func (o *Secret) Meta() *ObjectMeta { return &o.Metadata }

// Service is a v1 Service.
type Service struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     ServiceSpec `json:"spec"`
}

// ServiceSpec is the part of a ServiceSpec Cortex sets.
type ServiceSpec struct {
	Selector map[string]string `json:"selector"`
	Ports    []ServicePort     `json:"ports"`
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name       string `json:"name"`
	Protocol   string `json:"protocol"`
	Port       int32  `json:"port"`
	TargetPort int32  `json:"targetPort"`
}

// PersistentVolumeClaim is a v1 PersistentVolumeClaim.
type PersistentVolumeClaim struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     PVCSpec    `json:"spec"`
}

// PVCSpec is a PersistentVolumeClaimSpec.
type PVCSpec struct {
	AccessModes      []string             `json:"accessModes"`
	StorageClassName *string              `json:"storageClassName,omitempty"`
	Resources        VolumeResourceLimits `json:"resources"`
}

// VolumeResourceLimits is a claim's requests.
type VolumeResourceLimits struct {
	Requests map[string]string `json:"requests"`
}

// Deployment is an apps/v1 Deployment.
type Deployment struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta     `json:"metadata"`
	Spec     DeploymentSpec `json:"spec"`
}

// DeploymentSpec is the part of a DeploymentSpec Cortex sets.
type DeploymentSpec struct {
	Replicas *int32             `json:"replicas"`
	Selector LabelSelector      `json:"selector"`
	Strategy DeploymentStrategy `json:"strategy"`
	Template PodTemplateSpec    `json:"template"`
}

// DeploymentStrategy is Recreate for agents (one instance at a time, as
// on a single node) and RollingUpdate for gateways.
type DeploymentStrategy struct {
	Type string `json:"type"`
}

// Job is a batch/v1 Job.
type Job struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     JobSpec    `json:"spec"`
}

// JobSpec is the part of a JobSpec Cortex sets.
type JobSpec struct {
	BackoffLimit *int32          `json:"backoffLimit"`
	Template     PodTemplateSpec `json:"template"`
}

// NetworkPolicy is a networking.k8s.io/v1 NetworkPolicy.
type NetworkPolicy struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta        `json:"metadata"`
	Spec     NetworkPolicySpec `json:"spec"`
}

// NetworkPolicySpec selects pods and lists what they may reach.
type NetworkPolicySpec struct {
	PodSelector LabelSelector `json:"podSelector"`
	PolicyTypes []string      `json:"policyTypes"`
	Ingress     []NPRule      `json:"ingress,omitempty"`
	Egress      []NPRule      `json:"egress,omitempty"`
}

// NPRule is an ingress rule (From) or an egress rule (To).
type NPRule struct {
	From  []NPPeer `json:"from,omitempty"`
	To    []NPPeer `json:"to,omitempty"`
	Ports []NPPort `json:"ports,omitempty"`
}

// NPPeer is a set of pods or addresses.
type NPPeer struct {
	PodSelector       *LabelSelector `json:"podSelector,omitempty"`
	NamespaceSelector *LabelSelector `json:"namespaceSelector,omitempty"`
	IPBlock           *IPBlock       `json:"ipBlock,omitempty"`
}

// IPBlock is a CIDR with exceptions.
type IPBlock struct {
	CIDR   string   `json:"cidr"`
	Except []string `json:"except,omitempty"`
}

// NPPort is a protocol and port.
type NPPort struct {
	Protocol string `json:"protocol"`
	Port     int32  `json:"port"`
}

// LabelSelector matches labels exactly.
type LabelSelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// PodTemplateSpec is a pod template.
type PodTemplateSpec struct {
	Metadata ObjectMeta `json:"metadata"`
	Spec     PodSpec    `json:"spec"`
}

// PodSpec is the part of a PodSpec Cortex sets.
type PodSpec struct {
	ServiceAccountName            string              `json:"serviceAccountName,omitempty"`
	AutomountServiceAccountToken  *bool               `json:"automountServiceAccountToken,omitempty"`
	EnableServiceLinks            *bool               `json:"enableServiceLinks,omitempty"`
	RestartPolicy                 string              `json:"restartPolicy"`
	TerminationGracePeriodSeconds *int64              `json:"terminationGracePeriodSeconds,omitempty"`
	DNSPolicy                     string              `json:"dnsPolicy,omitempty"`
	DNSConfig                     *PodDNSConfig       `json:"dnsConfig,omitempty"`
	SecurityContext               *PodSecurityContext `json:"securityContext,omitempty"`
	Affinity                      *Affinity           `json:"affinity,omitempty"`
	InitContainers                []Container         `json:"initContainers,omitempty"`
	Containers                    []Container         `json:"containers"`
	Volumes                       []Volume            `json:"volumes,omitempty"`
}

// PodDNSConfig sets the pod's resolv.conf.
type PodDNSConfig struct {
	Nameservers []string `json:"nameservers"`
}

// PodSecurityContext is the pod-level security context.
type PodSecurityContext struct {
	RunAsNonRoot   *bool           `json:"runAsNonRoot,omitempty"`
	RunAsUser      *int64          `json:"runAsUser,omitempty"`
	RunAsGroup     *int64          `json:"runAsGroup,omitempty"`
	FSGroup        *int64          `json:"fsGroup,omitempty"`
	SeccompProfile *SeccompProfile `json:"seccompProfile,omitempty"`
}

// SeccompProfile is RuntimeDefault or Localhost with a node-local path.
type SeccompProfile struct {
	Type             string `json:"type"`
	LocalhostProfile string `json:"localhostProfile,omitempty"`
}

// Affinity holds node affinity only.
type Affinity struct {
	NodeAffinity *NodeAffinity `json:"nodeAffinity,omitempty"`
}

// NodeAffinity is a hard scheduling requirement.
type NodeAffinity struct {
	Required *NodeSelector `json:"requiredDuringSchedulingIgnoredDuringExecution,omitempty"`
}

// NodeSelector ORs its terms.
type NodeSelector struct {
	Terms []NodeSelectorTerm `json:"nodeSelectorTerms"`
}

// NodeSelectorTerm ANDs its expressions.
type NodeSelectorTerm struct {
	MatchExpressions []NodeSelectorRequirement `json:"matchExpressions"`
}

// NodeSelectorRequirement compares a node label.
type NodeSelectorRequirement struct {
	Key      string   `json:"key"`
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// Container is the part of a Container Cortex sets.
type Container struct {
	Name            string                `json:"name"`
	Image           string                `json:"image"`
	Command         []string              `json:"command,omitempty"`
	Args            []string              `json:"args,omitempty"`
	WorkingDir      string                `json:"workingDir,omitempty"`
	Ports           []ContainerPort       `json:"ports,omitempty"`
	EnvFrom         []EnvFromSource       `json:"envFrom,omitempty"`
	Env             []EnvVar              `json:"env,omitempty"`
	Resources       *Resources            `json:"resources,omitempty"`
	VolumeMounts    []VolumeMount         `json:"volumeMounts,omitempty"`
	RestartPolicy   string                `json:"restartPolicy,omitempty"`
	SecurityContext *ContainerSecurityCtx `json:"securityContext,omitempty"`
}

// ContainerPort is a named port.
type ContainerPort struct {
	Name          string `json:"name"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
}

// EnvVar is a value or a reference to a Secret key.
type EnvVar struct {
	Name      string        `json:"name"`
	Value     string        `json:"value,omitempty"`
	ValueFrom *EnvVarSource `json:"valueFrom,omitempty"`
}

// EnvFromSource makes every key of a Secret an environment variable.
type EnvFromSource struct {
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// LocalObjectReference names an object in the same namespace.
type LocalObjectReference struct {
	Name string `json:"name"`
}

// EnvVarSource reads a Secret key.
type EnvVarSource struct {
	SecretKeyRef *KeySelector `json:"secretKeyRef,omitempty"`
}

// KeySelector names a key of a Secret or ConfigMap.
type KeySelector struct {
	Name     string `json:"name"`
	Key      string `json:"key"`
	Optional *bool  `json:"optional,omitempty"`
}

// Resources are a container's requests and limits.
type Resources struct {
	Limits   map[string]string `json:"limits,omitempty"`
	Requests map[string]string `json:"requests,omitempty"`
}

// VolumeMount mounts a volume (or a sub path of it).
type VolumeMount struct {
	Name      string `json:"name"`
	MountPath string `json:"mountPath"`
	SubPath   string `json:"subPath,omitempty"`
	ReadOnly  bool   `json:"readOnly,omitempty"`
}

// ContainerSecurityCtx is a container's security context.
type ContainerSecurityCtx struct {
	AllowPrivilegeEscalation *bool         `json:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   *bool         `json:"readOnlyRootFilesystem"`
	RunAsNonRoot             *bool         `json:"runAsNonRoot,omitempty"`
	Privileged               *bool         `json:"privileged,omitempty"`
	Capabilities             *Capabilities `json:"capabilities,omitempty"`
}

// Capabilities adds or drops Linux capabilities.
type Capabilities struct {
	Drop []string `json:"drop,omitempty"`
}

// Volume is an emptyDir, a claim, a ConfigMap or a Secret.
type Volume struct {
	Name                  string           `json:"name"`
	EmptyDir              *EmptyDir        `json:"emptyDir,omitempty"`
	PersistentVolumeClaim *PVCVolume       `json:"persistentVolumeClaim,omitempty"`
	ConfigMap             *ConfigMapVolume `json:"configMap,omitempty"`
	Secret                *SecretVolume    `json:"secret,omitempty"`
}

// EmptyDir is scratch space, on disk or in memory.
type EmptyDir struct {
	Medium    string `json:"medium,omitempty"`
	SizeLimit string `json:"sizeLimit,omitempty"`
}

// PVCVolume mounts a claim.
type PVCVolume struct {
	ClaimName string `json:"claimName"`
}

// ConfigMapVolume mounts a ConfigMap.
type ConfigMapVolume struct {
	Name     string      `json:"name"`
	Items    []KeyToPath `json:"items,omitempty"`
	Optional *bool       `json:"optional,omitempty"`
}

// SecretVolume mounts a Secret.
type SecretVolume struct {
	SecretName string      `json:"secretName"`
	Items      []KeyToPath `json:"items,omitempty"`
	Optional   *bool       `json:"optional,omitempty"`
}

// KeyToPath places one key at a path.
type KeyToPath struct {
	Key  string `json:"key"`
	Path string `json:"path"`
}

func (o *Namespace) GVK() GVK                      { return gvkNamespace }
func (o *Namespace) Meta() *ObjectMeta             { return &o.Metadata }
func (o *ServiceAccount) GVK() GVK                 { return gvkServiceAccount }
func (o *ServiceAccount) Meta() *ObjectMeta        { return &o.Metadata }
func (o *ConfigMap) GVK() GVK                      { return gvkConfigMap }
func (o *ConfigMap) Meta() *ObjectMeta             { return &o.Metadata }
func (o *Service) GVK() GVK                        { return gvkService }
func (o *Service) Meta() *ObjectMeta               { return &o.Metadata }
func (o *PersistentVolumeClaim) GVK() GVK          { return gvkPVC }
func (o *PersistentVolumeClaim) Meta() *ObjectMeta { return &o.Metadata }
func (o *Deployment) GVK() GVK                     { return gvkDeployment }
func (o *Deployment) Meta() *ObjectMeta            { return &o.Metadata }
func (o *Job) GVK() GVK                            { return gvkJob }
func (o *Job) Meta() *ObjectMeta                   { return &o.Metadata }
func (o *NetworkPolicy) GVK() GVK                  { return gvkNetworkPolicy }
func (o *NetworkPolicy) Meta() *ObjectMeta         { return &o.Metadata }

func ptr[T any](v T) *T { return &v }
