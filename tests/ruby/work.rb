# frozen_string_literal: true

# Runs a real Ruby delayed_job worker (Delayed::Worker#start) on DJ_DATABASE.
# Job classes come from env.rb; their perform methods append what they received to the
# JSON-lines file DJ_RECORD (one {"call": ..., "job_id": ..., ...} line per call).
#
#   DJ_DATABASE=sqlite3:/tmp/dj.db DJ_RECORD=/tmp/rec.jsonl ruby tests/ruby/work.rb
#   ruby tests/ruby/work.rb --queues reports,late --max-attempts 2 --no-exit-on-complete
#   ruby tests/ruby/work.rb --work-off 10     # one work_off(10) batch, prints the counts
#
# Options may also come from the environment: DJ_QUEUES, DJ_MAX_ATTEMPTS, DJ_MAX_RUN_TIME,
# DJ_MIN_PRIORITY, DJ_MAX_PRIORITY, DJ_SLEEP_DELAY, DJ_READ_AHEAD, DJ_WORKER_NAME,
# DJ_EXIT_ON_COMPLETE (0/1), DJ_DESTROY_FAILED_JOBS (0/1), DJ_SKIP_CLASSES. Command-line
# options win. Default: exit when no job is ready (exit_on_complete), like `rake jobs:workoff`.
#
# --skip-classes A,B keeps this worker away from struct/object jobs of those classes (jobs
# only another runtime, such as djmw, can run): an app-side scope on Delayed::Job.ready_to_run,
# because delayed_job itself reserves every eligible row whatever its class.

require 'optparse'
require_relative 'env'

def env_flag(name)
  value = ENV[name]
  return nil if value.nil? || value.empty?

  %w[1 true yes on].include?(value.downcase)
end

opts = {
  queues: ENV['DJ_QUEUES']&.split(',')&.map(&:strip)&.reject(&:empty?),
  max_attempts: ENV['DJ_MAX_ATTEMPTS']&.to_i,
  max_run_time: ENV['DJ_MAX_RUN_TIME']&.to_f,
  min_priority: ENV['DJ_MIN_PRIORITY']&.to_i,
  max_priority: ENV['DJ_MAX_PRIORITY']&.to_i,
  sleep_delay: ENV['DJ_SLEEP_DELAY']&.to_f,
  read_ahead: ENV['DJ_READ_AHEAD']&.to_i,
  name: ENV['DJ_WORKER_NAME'],
  exit_on_complete: env_flag('DJ_EXIT_ON_COMPLETE'),
  destroy_failed_jobs: env_flag('DJ_DESTROY_FAILED_JOBS'),
  skip_classes: ENV['DJ_SKIP_CLASSES']&.split(',')&.map(&:strip)&.reject(&:empty?),
  quiet: false,
  work_off: nil,
}

OptionParser.new do |o|
  o.banner = 'usage: work.rb [options]'
  o.on('--queues LIST', Array, 'comma-separated queue names') { |v| opts[:queues] = v }
  o.on('--max-attempts N', Integer) { |v| opts[:max_attempts] = v }
  o.on('--max-run-time SECONDS', Float) { |v| opts[:max_run_time] = v }
  o.on('--min-priority N', Integer) { |v| opts[:min_priority] = v }
  o.on('--max-priority N', Integer) { |v| opts[:max_priority] = v }
  o.on('--sleep-delay SECONDS', Float) { |v| opts[:sleep_delay] = v }
  o.on('--read-ahead N', Integer) { |v| opts[:read_ahead] = v }
  o.on('--name NAME', 'worker name (locked_by)') { |v| opts[:name] = v }
  o.on('--[no-]exit-on-complete', 'stop when no job is ready (default: yes)') { |v| opts[:exit_on_complete] = v }
  o.on('--[no-]destroy-failed-jobs', 'delete permanently failed jobs (default: yes)') { |v| opts[:destroy_failed_jobs] = v }
  o.on('--quiet', 'no `puts` of log lines (the Logger still gets them)') { opts[:quiet] = true }
  o.on('--work-off N', Integer, 'run one work_off(N) batch instead of start') { |v| opts[:work_off] = v }
  o.on('--skip-classes LIST', Array, 'never reserve struct/object jobs of these classes') { |v| opts[:skip_classes] = v }
end.parse!(ARGV)

# Rows whose handler is `--- !ruby/struct:<Name>` or `--- !ruby/object:<Name>` for a skipped
# class are not ready_to_run for this worker (the scope feeds every reserve strategy).
if opts[:skip_classes]&.any?
  patterns = opts[:skip_classes].flat_map do |name|
    %w[struct object].product(["\n%", ' %']).map do |kind, rest|
      Delayed::Job.sanitize_sql_like("--- !ruby/#{kind}:#{name}", '!') + rest
    end
  end
  Delayed::Job.singleton_class.prepend(Module.new do
    define_method(:ready_to_run) do |worker_name, max_run_time|
      patterns.reduce(super(worker_name, max_run_time)) do |scope, pattern|
        scope.where("handler NOT LIKE ? ESCAPE '!'", pattern)
      end
    end
  end)
end

Delayed::Worker.max_attempts = opts[:max_attempts] if opts[:max_attempts]
Delayed::Worker.max_run_time = opts[:max_run_time] if opts[:max_run_time]
Delayed::Worker.destroy_failed_jobs = opts[:destroy_failed_jobs] unless opts[:destroy_failed_jobs].nil?

worker_options = { quiet: opts[:quiet], exit_on_complete: opts[:exit_on_complete].nil? ? true : opts[:exit_on_complete] }
%i[queues min_priority max_priority sleep_delay read_ahead].each do |key|
  worker_options[key] = opts[key] unless opts[key].nil?
end

worker = Delayed::Worker.new(worker_options)
worker.name = opts[:name] if opts[:name]
$stdout.sync = true

if opts[:work_off]
  success, failure = worker.work_off(opts[:work_off])
  puts JSON.generate('work_off' => { 'success' => success, 'failure' => failure }, 'name' => worker.name)
else
  worker.start
  puts JSON.generate('worker' => 'stopped', 'name' => worker.name)
end
