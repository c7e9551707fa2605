{{/* The chart name, overridable. */}}
{{- define "tpuserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The object name prefix: fullnameOverride, else "<release>" if it contains the chart name, else "<release>-<name>". */}}
{{- define "tpuserve.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels every object carries, without a component. */}}
{{- define "tpuserve.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "tpuserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tpuserve
{{- end -}}

{{/* Labels of the operator's objects. */}}
{{- define "tpuserve.labels" -}}
{{ include "tpuserve.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels that select the operator pod (immutable in the Deployment selector: never add to them). */}}
{{- define "tpuserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tpuserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The operator's ServiceAccount name. */}}
{{- define "tpuserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tpuserve.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The operator image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "tpuserve.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The namespaces served when scope is namespaced, as a JSON list (default: the release namespace). */}}
{{- define "tpuserve.watchNamespaces" -}}
{{- if .Values.watchNamespaces -}}
{{- .Values.watchNamespaces | uniq | toJson -}}
{{- else -}}
{{- list .Release.Namespace | toJson -}}
{{- end -}}
{{- end -}}

{{/* Namespaces that get the workload ServiceAccount, as a JSON list. */}}
{{- define "tpuserve.workloadNamespaces" -}}
{{- if eq .Values.scope "namespaced" -}}
{{- include "tpuserve.watchNamespaces" . -}}
{{- else -}}
{{- prepend .Values.workloads.serviceAccount.namespaces .Release.Namespace | uniq | toJson -}}
{{- end -}}
{{- end -}}

{{/* A map as "k1=v1, k2=v2" (sorted by key). */}}
{{- define "tpuserve.labelList" -}}
{{- $pairs := list -}}
{{- range $k, $v := . -}}
{{- $pairs = append $pairs (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join ", " $pairs -}}
{{- end -}}
