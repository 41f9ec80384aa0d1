/**
 * What a secret file's mode (the planner's token file, its signing key) lets others do beyond its
 * owner and group, as a phrase for a warning, or undefined when nothing. One rule for both files.
 *
 * Group read is accepted: Kubernetes mounts a Secret under a pod's fsGroup as root:fsGroup with
 * the group's read bit added (defaultMode 0400 shows as 0440), and the non-root planner reads it
 * through that group, so warning about 0440 warned about the deployment we ship. Group write and
 * any access by others are warned about (write by others is refused where the file is read).
 */
export function secretFileExposure(mode: number): string | undefined {
  const readable = (mode & 0o004) !== 0;
  const groupWritable = (mode & 0o020) !== 0;
  if (readable && groupWritable) return 'readable by others and writable by its group';
  if (readable) return 'readable by others';
  if (groupWritable) return 'writable by its group';
  return undefined;
}
