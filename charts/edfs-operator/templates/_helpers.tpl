{{/*
Names and labels shared by every template. The selector labels never change between upgrades
(a Deployment's selector is immutable).
*/}}

{{- define "edfs-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "edfs-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "edfs-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edfs-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "edfs-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "edfs-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: edfs
{{- end }}

{{- define "edfs-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "edfs-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
What the operator does in the namespaces it watches: read its own API, write status, own the
router objects it server-side applies, read Secrets (EventProvider checks) and record Events.
No wildcards: every group, resource and verb is named.
*/}}
{{- define "edfs-operator.watchRules" -}}
- apiGroups: [edfs.io]
  resources: [eventproviders, subgraphs, supergraphs]
  verbs: [get, list, watch]
- apiGroups: [edfs.io]
  resources: [eventproviders/status, subgraphs/status, supergraphs/status, supergraphs/scale]
  verbs: [get, patch, update]
# blockOwnerDeletion on the children's owner references needs this where the
# OwnerReferencesPermissionEnforcement admission plugin is on.
- apiGroups: [edfs.io]
  resources: [supergraphs/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [keda.sh]
  resources: [scaledobjects]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* Reading CRD definitions tells the operator whether ServiceMonitor and KEDA exist. */}}
{{- define "edfs-operator.crdRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list]
{{- end }}
