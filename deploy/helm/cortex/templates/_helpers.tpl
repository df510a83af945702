{{/* Common labels. */}}
{{- define "cortex.labels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cortex
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* The cortex image. */}}
{{- define "cortex.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The agent seccomp profile's file name: agent-<first 12 hex of its
SHA-256>.json, as cortex render names it in pods. */}}
{{- define "cortex.seccompFile" -}}
agent-{{ .Files.Get "files/seccomp/agent.json" | sha256sum | trunc 12 }}.json
{{- end -}}
