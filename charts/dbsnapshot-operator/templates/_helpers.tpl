{{- define "dbsnapshot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dbsnapshot.fullname" -}}
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

{{- define "dbsnapshot.labels" -}}
app.kubernetes.io/name: {{ include "dbsnapshot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "dbsnapshot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dbsnapshot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dbsnapshot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "dbsnapshot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The permissions the operator needs, and nothing else. */}}
{{- define "dbsnapshot.rules" -}}
- apiGroups: ["dbsnapshot.io"]
  resources: ["clustersnapshots", "snapshotcopies", "snapshotschedules"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["dbsnapshot.io"]
  resources: ["clustersnapshots/status", "snapshotcopies/status", "snapshotschedules/status"]
  verbs: ["get", "patch"]
- apiGroups: ["dbsnapshot.io"]
  resources: ["clustersnapshots/finalizers", "snapshotcopies/finalizers"]
  verbs: ["update"]
{{- /* A SnapshotSchedule creates each run's ClusterSnapshot and its copies, and its
       retention deletes them. */}}
- apiGroups: ["dbsnapshot.io"]
  resources: ["clustersnapshots", "snapshotcopies"]
  verbs: ["create", "delete"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
