/**
 * drover master: campaigns for leadership in etcd; while it leads it runs MasterLeader; a
 * follower serves only redirects. Losing the lease (or a fenced write failing) ends the
 * leadership at once; the process then campaigns again.
 */
import { runService } from "./run.js";

await runService();
